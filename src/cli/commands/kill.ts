import { Command } from 'commander';
import { parseSignal } from '../../options/lifecycle-options.js';
import { validateName } from '../../options/parse.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm kill [-s SIGNAL] NAME...` */
export function killCommand(host: CommandHost): Command {
  return new Command('kill')
    .description('send a signal to VMs\' containers (their main process), as podman kill; the VM ends when its container does')
    .argument('<names...>', 'the VMs')
    .option('-s, --signal <signal>', 'the signal: a name (TERM, SIGUSR1) or a number', 'KILL')
    .action(async (names: string[], flags: { signal: string }) => {
      const signal = parseSignal(flags.signal);
      const valid = names.map((n) => validateName(n));
      const ctx = host.context();
      const { killVms } = await import('../../lifecycle/kill.js');
      await killVms(ctx.layout, ctx.log, valid, signal, (name) => process.stdout.write(`${name}\n`));
    });
}
