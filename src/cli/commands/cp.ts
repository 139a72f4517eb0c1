import { Command } from 'commander';
import { cpOptionsFromFlags, type CpFlags } from '../../options/cp-options.js';
import { switchesWithEquals } from '../../options/switch-args.js';
import { withInterrupts } from '../interrupts.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm cp [--archive=false] [--overwrite] NAME:PATH HOSTPATH|-`, or `HOSTPATH|- NAME:PATH` */
export function cpCommand(host: CommandHost): Command {
  const cmd = new Command('cp')
    .description('copy files between the host and a running VM\'s container, as podman cp; "-" is a tar stream on stdin or stdout')
    .argument('<src>', 'NAME:PATH in the container, or a host path ("-": a tar stream on stdin)')
    .argument('<dest>', 'a host path ("-": a tar stream to stdout), or NAME:PATH in the container')
    .option('-a, --archive [bool]', 'files copied in get the container\'s main user as owner (--archive=false keeps the owners they had)', (v: string) => v !== 'false')
    .option('--overwrite', 'let a directory replace a file and the reverse');
  // As podman's, --archive takes a value only after "=" (-a SRC DEST copies SRC).
  const parseOptions = cmd.parseOptions.bind(cmd);
  const shapes = cmd.options.map((o) => ({ short: o.short, long: o.long, takesValue: o.required, isSwitch: o.optional && !o.required }));
  cmd.parseOptions = (argv) => parseOptions(switchesWithEquals(argv, shapes));
  return cmd.action(async (src: string, dest: string, flags: CpFlags) => {
      const opts = cpOptionsFromFlags(src, dest, flags);
      const ctx = host.context();
      const { copy } = await import('../../lifecycle/copy.js');
      host.setExitCode(await withInterrupts((interrupt) =>
        copy(ctx.layout, ctx.log, opts, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, interrupt })));
    });
}
