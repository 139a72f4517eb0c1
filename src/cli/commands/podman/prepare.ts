import { Command } from 'commander';
import { errors } from '../../../errors/catalogue.js';
import { runOptionsFromFlags, type RunFlags } from '../../../options/run-options.js';
import { withInterrupts } from '../../interrupts.js';
import type { CommandHost } from '../../command-host.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `fcvm podman prepare IMAGE [run options]`: builds the startup snapshot `podman run` would use. */
export function podmanPrepareCommand(host: CommandHost): Command {
  return new Command('prepare')
    .description('save the startup snapshot that "fcvm podman run" with these options will restore; prints one JSON line (created or hit, key, time)')
    .argument('[image]', 'an image in the host\'s podman storage (localhost/NAME)')
    .option('--name <name>', 'name of the VM that boots to take the snapshot')
    .option('--cpu <n>', 'vCPUs, as "podman run" takes it (default 2, at most the host\'s CPUs)')
    .option('--mem <mib>', 'guest memory in MiB (or with M/G suffix)', '512')
    .option('-e, --env <KEY=VALUE,...>', 'accepted as "podman run" takes it; not part of the snapshot', collect)
    .option('--privileged', 'accepted as "podman run" takes it; not part of the snapshot')
    .option('--hypervisor <name>', 'qemu, firecracker or auto (env FCVM_HYPERVISOR)')
    .option('--accel <accel>', 'auto, kvm or tcg', 'auto')
    .option('--network <mode>', 'bridged, rootless or none (as "podman run")')
    .option('-p, --publish <[hostip:]hostport:guestport[/proto],...>', 'accepted as "podman run" takes it; not part of the snapshot', collect)
    .option('--map <HOST:GUEST[:ro],...>', 'volumes: their container paths are part of the snapshot', collect)
    .option('--setup', 'run "fcvm setup" first if artifacts are missing')
    .option('--boot-timeout <seconds>', 'how long to wait for the guest agent', '120')
    .action(async (image: string | undefined, flags: RunFlags) => {
      if (!image) throw errors.usage('no image given', 'Usage: fcvm podman prepare IMAGE [run options]');
      const opts = runOptionsFromFlags(image, [], { ...flags, snapshot: true }, { ...process.env, FCVM_NO_SNAPSHOT: '' });
      const ctx = host.context();
      const { podmanPrepare } = await import('../../../vm/podman-prepare.js');
      const r = await withInterrupts((interrupt) => podmanPrepare(opts, { layout: ctx.layout, log: ctx.log, out: process.stderr, interrupt }));
      process.stdout.write(JSON.stringify(r) + '\n');
    });
}
