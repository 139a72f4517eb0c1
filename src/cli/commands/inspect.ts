import { Command } from 'commander';
import { validateName } from '../../options/parse.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm inspect NAME...` */
export function inspectCommand(host: CommandHost): Command {
  return new Command('inspect')
    .description('print running VMs as JSON (an array, as podman inspect): run plan, network, ports, status history, PIDs, log')
    .argument('<names...>', 'the VMs')
    .action(async (names: string[]) => {
      const refs = names.map((n) => ({ name: validateName(n) }));
      const ctx = host.context();
      const { inspectVm } = await import('../../lifecycle/inspect.js');
      const out = [];
      for (const ref of refs) out.push(await inspectVm(ctx.layout, ctx.log, ref));
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    });
}
