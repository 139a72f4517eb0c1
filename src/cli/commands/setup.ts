import { Command } from 'commander';
import type { CommandHost } from '../command-host.js';
import { parseChoice, parseSize } from '../../options/parse.js';
import { KERNEL_PROFILES } from '../../setup/kernel-profile.js';

/** `fcvm setup [--force]` */
export function setupCommand(host: CommandHost): Command {
  return new Command('setup')
    .description('build the guest kernel, initrd and root filesystem from Debian packages (content-addressed; fast when up to date)')
    .option('--force', 'rebuild every artifact')
    .option('--reflink-fs <size>', 'create a loop-mounted btrfs of this size (e.g. 20G, sparse) under the base dir for raw disks, where its filesystem cannot reflink')
    .option('--kernel-profile <profile>', 'default, or nested: also build the guest for VMs that run VMs (KVM modules, QEMU in the rootfs)')
    .action(async (flags: { force?: boolean; reflinkFs?: string; kernelProfile?: string }) => {
      const profile = parseChoice('--kernel-profile', flags.kernelProfile ?? 'default', KERNEL_PROFILES);
      const reflinkFsBytes = flags.reflinkFs === undefined ? undefined : parseSize('--reflink-fs', flags.reflinkFs, 1 << 30);
      const ctx = host.context();
      const { setup } = await import('../../setup/setup.js');
      const { createProgress } = await import('../progress.js');
      const t0 = Date.now();
      const progress = createProgress(process.stderr, 'setup');
      try {
        const m = await setup({ layout: ctx.layout, force: flags.force ?? false, log: ctx.log, progress: (l) => progress.say(l), profiles: [profile], live: (l) => progress.live(l), ...(reflinkFsBytes ? { reflinkFsBytes } : {}) });
        progress.say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)}s (kernel ${m.kernelVersion}, base dir ${ctx.layout.base})`);
      } finally {
        progress.done();
      }
    });
}
