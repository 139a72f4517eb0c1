import { Command } from 'commander';
import { execInVm } from '../../exec/exec-client.js';
import { findRunningVm, WAITS_FOR_START_MS } from '../../exec/find-vm.js';
import { execOptionsFromFlags, type ExecFlags } from '../../options/exec-options.js';
import { withInterrupts } from '../interrupts.js';
import { endOptionsAtCommand } from '../../options/switch-args.js';
import type { CommandHost } from '../command-host.js';
import { warnIfNotATerminal } from '../tty-warning.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `fcvm exec NAME|--pid P [--vm] [-i] [-t] [-e K=V] [-w DIR] [-u USER] [--] CMD...` */
export function execCommand(host: CommandHost): Command {
  const cmd = new Command('exec')
    .description('run a command in a running VM\'s container (or with --vm, in the guest OS); exits with its exit code')
    .argument('[name-and-command...]', 'VM name (unless --pid), then the command (options end there, as in podman exec; "--" before it also works)')
    .option('--pid <pid>', 'the VM whose supervisor or VMM has this PID')
    .option('--vm', 'run in the guest OS instead of the container')
    .option('-i, --interactive', 'forward stdin')
    .option('-t, --tty', 'allocate a terminal in the guest (follows window resizes)')
    .option('-e, --env <KEY=VALUE,...>', 'environment (repeatable, comma-separated)', collect)
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user>', 'user to run as');
  // As podman exec, the command's own words are never fcvm's (fcvm exec web ls -l); fcvm's
  // options may still follow the name (fcvm exec web --vm -- hostname).
  const parseOptions = cmd.parseOptions.bind(cmd);
  const shapes = cmd.options.map((o) => ({ short: o.short, long: o.long, takesValue: o.required, isSwitch: false }));
  cmd.parseOptions = (argv) => parseOptions(endOptionsAtCommand(argv, shapes, '--pid'));
  return cmd.action(async (positional: string[], flags: ExecFlags) => {
    const opts = execOptionsFromFlags(positional, flags, Boolean(process.stdin.isTTY && process.stdout.isTTY));
    warnIfNotATerminal(opts.request.interactive, opts.request.tty);
    const ctx = host.context();
    // Right after `podman run -d` the VM may still be starting: wait for it, as podman exec would find the container.
    const { state, socket } = await findRunningVm(ctx.layout, ctx.log, opts.by, WAITS_FOR_START_MS);
    host.setExitCode(await withInterrupts((interrupt) =>
      execInVm(socket, `VM "${state.name}"`, opts.request, {
        stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, interrupt,
        mark: (what) => ctx.log.debug({ ms: Math.round(performance.now()) }, `exec: ${what}`),
      }),
    ));
  });
}
