import { Command } from 'commander';
import { validateName } from '../../options/parse.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm wait NAME...` */
export function waitCommand(host: CommandHost): Command {
  return new Command('wait')
    .description('wait until VMs\' containers end and print each one\'s exit code, as podman wait (a VM that ended answers from its kept log)')
    .argument('<names...>', 'the VMs')
    .action(async (names: string[]) => {
      const valid = names.map((n) => validateName(n));
      const ctx = host.context();
      const { waitVms } = await import('../../lifecycle/wait.js');
      // Ctrl-C ends the wait as it would any command: nothing is held that needs letting go.
      await waitVms(ctx.layout, ctx.log, valid, (_name, code) => process.stdout.write(`${code}\n`));
    });
}
