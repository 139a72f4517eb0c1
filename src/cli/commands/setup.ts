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
      const { createProgress } = await import('../progress.js');
      const t0 = Date.now();
      const progress = createProgress(process.stderr, 'setup');
      try {
        const m = await setup({ layout: ctx.layout, force: flags.force ?? false, log: ctx.log, progress: (l) => progress.say(l), live: (l) => progress.live(l) });
        progress.say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)}s (kernel ${m.kernelVersion}, base dir ${ctx.layout.base})`);
      } finally {
        progress.done();
      }
    });
}
