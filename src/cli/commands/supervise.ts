import { Command } from 'commander';
import { withInterrupts } from '../interrupts.js';
import type { CommandHost } from '../command-host.js';
import type { CliContext } from '../context.js';
import { SUPERVISE_COMMAND } from '../../vm/detach.js';
import { detachStdio } from '../../util/stdio-errors.js';

/** The global flags a detached supervisor is started with (its job comes over IPC). */
export function detachedGlobals(ctx: CliContext): string[] {
  return ['--base-dir', ctx.layout.base, '--log-level', ctx.log.level, ...(ctx.debug ? ['--debug'] : [])];
}

/**
 * The hidden `__supervise` command: a detached supervisor (`podman run -d`,
 * `snapshot run -d`), started by its launcher in a session of its own.
 */
export function superviseCommand(host: CommandHost): Command {
  return new Command(SUPERVISE_COMMAND)
    .description('(internal) a detached supervisor')
    .action(async () => {
      // Its launcher's pipe may go at any moment: writes there must not kill the run.
      detachStdio();
      const { receiveJob, reportStarted } = await import('../../vm/detach.js');
      const job = await receiveJob();
      const ctx = host.context();
      // Output and logs go to the launcher's pipe (a failure before the start is its to
      // tell), then to the VM's log from the moment it opens.
      const detached = (log: { write(s: string): unknown }) => {
        host.diagnostics.switchTo(log);
        // 70: EX_SOFTWARE, an internal error.
        host.exitOnUncaught((e) => log.write(`fcvm: internal error in the detached supervisor: ${e.stack ?? e}\n`), 70);
        reportStarted(job.kind === 'run' ? job.opts.name : job.flags.name);
      };
      const env = { layout: ctx.layout, log: ctx.log, out: host.diagnostics, detached };
      try {
        if (job.kind === 'run') {
          const { podmanRun } = await import('../../vm/podman-run.js');
          host.setExitCode(await withInterrupts((interrupt) => podmanRun(job.opts, { ...env, interrupt })));
        } else {
          const { snapshotRun } = await import('../../vm/snapshot-run.js');
          host.setExitCode(await withInterrupts((interrupt) => snapshotRun(job.flags, { ...env, interrupt }, { stdout: process.stdout, stderr: process.stderr })));
        }
      } finally {
        // A run that failed before its start still holds the launcher's pipe: let go, so this process can end.
        if (process.connected) process.disconnect();
      }
    });
}
