import { Command } from 'commander';
import type { CommandHost } from '../command-host.js';

/** `fcvm setup [--force]` */
export function setupCommand(host: CommandHost): Command {
  return new Command('setup')
    .description('build the guest kernel, initrd and root filesystem from Debian packages (content-addressed; fast when up to date)')
    .option('--force', 'rebuild every artifact')
    .action(async (flags: { force?: boolean }) => {
      const ctx = host.context();
      const { setup } = await import('../../setup/setup.js');
      const t0 = Date.now();
      const m = await setup({ layout: ctx.layout, force: flags.force ?? false, log: ctx.log, progress: (l) => process.stderr.write(`setup: ${l}\n`) });
      process.stderr.write(`setup: ready in ${((Date.now() - t0) / 1000).toFixed(1)}s (kernel ${m.kernelVersion}, base dir ${ctx.layout.base})\n`);
    });
}
