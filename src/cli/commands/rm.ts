import { Command } from 'commander';
import { removeOptionsFromFlags, type RemoveFlags } from '../../options/lifecycle-options.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm rm [-f] [-i] [-t SECONDS] NAME...` */
export function rmCommand(host: CommandHost): Command {
  return new Command('rm')
    .description('remove VMs as podman rm does: an ended VM\'s kept log and record go; a running VM only with --force, which stops it first')
    .argument('[names...]', 'the VMs')
    .option('-a, --all', 'every VM: the ended ones that were kept, and the running ones (which need --force)')
    .option('-f, --force', 'stop a running VM first (SIGTERM, then SIGKILL after the grace period)')
    .option('-i, --ignore', 'a name with nothing to remove is not an error (as with --force)')
    .option('-t, --time <seconds>', 'with --force: grace period before SIGKILL (default: the VM\'s --stop-timeout)')
    .action(async (names: string[], flags: RemoveFlags) => {
      const opts = removeOptionsFromFlags(names, flags);
      const ctx = host.context();
      const { removeVms } = await import('../../lifecycle/remove.js');
      await removeVms(ctx.layout, ctx.log, opts, (name) => process.stdout.write(`${name}\n`));
    });
}
