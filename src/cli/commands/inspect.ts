import { Command } from 'commander';
import { validateName } from '../../options/parse.js';
import type { CommandHost } from '../command-host.js';
import { parseFormat, renderFormatted } from '../../options/format-option.js';
import { table } from '../table.js';

/** `fcvm inspect NAME...` */
export function inspectCommand(host: CommandHost): Command {
  return new Command('inspect')
    .description('print VMs (running, or ended and kept) as JSON (an array, as podman inspect): run plan, network, ports, status history, PIDs, log')
    .argument('<names...>', 'the VMs')
    .option('-f, --format <template>', 'a Go template per VM, as podman inspect --format (e.g. \'{{.State.Status}}\'), or json')
    .action(async (names: string[], flags: { format?: string }) => {
      const refs = names.map((n) => ({ name: validateName(n) }));
      const format = flags.format === undefined ? undefined : parseFormat(flags.format);
      const ctx = host.context();
      const { inspectVm } = await import('../../lifecycle/inspect.js');
      const out = [];
      let missing: unknown;
      // As podman: the VMs found are printed, then the first one that is not fails the command.
      for (const ref of refs) out.push(...(await inspectVm(ctx.layout, ctx.log, ref).then((v) => [v], (e) => ((missing ??= e), []))));
      if (out.length > 0 || missing === undefined) {
        process.stdout.write(format?.kind === 'template' ? renderFormatted(out, format, table) : `${JSON.stringify(out, null, 2)}\n`);
      }
      if (missing !== undefined) throw missing;
    });
}
