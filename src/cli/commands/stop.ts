import { Command } from 'commander';
import { stopOptionsFromFlags, type StopFlags } from '../../options/lifecycle-options.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm stop NAME... | --pid P | --all [-t SECONDS]` */
export function stopCommand(host: CommandHost): Command {
  return new Command('stop')
    .description('stop running VMs as SIGTERM to their supervisor would: the container gets SIGTERM, then SIGKILL after the grace period; waits until all is gone')
    .argument('[names...]', 'the VMs')
    .option('--pid <pid>', 'the VM whose supervisor or VMM has this PID')
    .option('-a, --all', 'every running VM')
    .option('-t, --time <seconds>', 'grace period before SIGKILL (default: the VM\'s --stop-timeout)')
    .action(async (names: string[], flags: StopFlags) => {
      const opts = stopOptionsFromFlags(names, flags);
      const ctx = host.context();
      const { stopVms } = await import('../../lifecycle/stop.js');
      await stopVms(ctx.layout, ctx.log, opts, (name) => process.stdout.write(`${name}\n`));
    });
}
