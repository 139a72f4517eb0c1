import type { CloneFlags } from '../options/clone-options.js';
import type { RunOptions } from '../options/run-options.js';
import { execInVm, type ExecIo } from '../exec/exec-client.js';
import { withStatus } from '../state/vm-state.js';
import { cloneSteps } from './clone-steps.js';
import { controlSocketPath } from './control-server.js';
import { runVm } from './podman-run.js';
import type { Ctx, RunEnv } from './run-context.js';
import { superviseContainer } from './supervise.js';
import { takePooled } from '../snapshot/pool-client.js';

/**
 * `fcvm snapshot run`: starts a clone of a snapshot and supervises its container like
 * `podman run` does; with --exec, runs one command in the clone's container instead,
 * and resolves with that command's exit code.
 */
export async function snapshotRun(flags: CloneFlags, env: RunEnv, io: Pick<ExecIo, 'stdout' | 'stderr'> & Partial<Pick<ExecIo, 'stdin'>>): Promise<number> {
  // --exec from a server with a pool: a clone that is already restored, handed out now.
  if (flags.exec && flags.source.kind === 'serve') {
    const pooled = await takePooled(env.layout, env.log, flags.source.pid, flags, false);
    if (pooled) {
      try {
        const code = await execInVm(controlSocketPath(pooled.runDir), `clone "${pooled.name}"`, {
          target: 'container', command: flags.exec, env: {}, workdir: undefined, user: undefined, interactive: flags.raw.interactive ?? false, tty: flags.raw.tty ?? false,
        }, { stdin: io.stdin ?? process.stdin, stdout: io.stdout, stderr: io.stderr, interrupt: env.interrupt });
        env.log.debug({ name: pooled.name, code }, 'exec in the pooled clone done');
        return code;
      } finally {
        await pooled.release();
        env.log.debug({ name: pooled.name }, 'pooled clone released');
      }
    }
  }
  return snapshotRunFresh(flags, env, io);
}

/** A clone started for this run (no pool, or none that fits). */
function snapshotRunFresh(flags: CloneFlags, env: RunEnv, io: Pick<ExecIo, 'stdout' | 'stderr'> & Partial<Pick<ExecIo, 'stdin'>>): Promise<number> {
  // The name is all the first steps need; the snapshot step fills in the rest.
  const opts = { name: flags.name } as RunOptions;
  const body = flags.exec ? (c: Ctx) => execInClone(c, flags.exec!, { stdin: process.stdin, ...io }) : superviseContainer;
  return runVm(cloneSteps(flags), opts, env, body);
}

/** --exec: one command in the clone's container; with -i/-t, an interactive one (a shell in a fresh clone). */
async function execInClone(c: Ctx, command: string[], io: Pick<ExecIo, 'stdin' | 'stdout' | 'stderr'>): Promise<number> {
  c.state = withStatus(c.state, 'running');
  await c.store.update(c.state);
  return execInVm(controlSocketPath(c.state.runDir), `clone "${c.opts.name}"`, {
    target: 'container', command, env: {}, workdir: undefined, user: undefined, interactive: c.opts.interactive, tty: c.opts.tty,
  }, {
    stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, interrupt: c.env.interrupt,
  });
}
