import { Command } from 'commander';
import { runOptionsFromFlags, type RunFlags } from '../../../options/run-options.js';
import { withInterrupts } from '../../interrupts.js';
import type { CommandHost } from '../../command-host.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `fcvm podman run [options] IMAGE [-- COMMAND...]` */
export function podmanRunCommand(host: CommandHost): Command {
  return new Command('run')
    .description('run a container from IMAGE in a new microVM; exits with the container\'s exit code')
    .argument('[image]', 'image: a name in the host\'s podman storage (localhost/NAME), or a remote name the guest pulls')
    .argument('[command...]', 'command and arguments, replacing the image\'s CMD (put them after "--")')
    .option('--name <name>', 'VM name (letters, digits, . _ -; at most 63)')
    .option('--cpu <n>', 'vCPUs', '2')
    .option('--mem <mib>', 'guest memory in MiB (or with M/G suffix)', '512')
    .option('-e, --env <KEY=VALUE,...>', 'environment for the container (repeatable, comma-separated)', collect)
    .option('--cmd <command>', 'command line for the container, split like a shell would (instead of "-- CMD")')
    .option('--privileged', 'give the container all capabilities and devices of the guest')
    .option('--hypervisor <name>', 'qemu, firecracker or auto (env FCVM_HYPERVISOR; default auto: Firecracker where it can run, else QEMU)')
    .option('--accel <accel>', 'auto, kvm or tcg (auto uses KVM only if the guest boots under it)', 'auto')
    .option('--network <mode>', 'bridged (root: own netns, veth, TAP, NAT), rootless (no privilege: QEMU user networking) or none; default bridged for root, rootless otherwise')
    .option('-p, --publish <[hostip:]hostport:guestport[/proto],...>', 'publish guest ports on the host (repeatable, comma-separated)', collect)
    .option('--map <HOST:GUEST[:ro],...>', 'map a host directory into the container (repeatable, comma-separated); ro: read-only', collect)
    .option('--health-check <url>', 'HTTP URL as the guest sees it, polled from the host; 2xx/3xx is healthy')
    .option('--health-check-timeout <seconds>', 'timeout of each health probe', '5')
    .option('--setup', 'run "fcvm setup" first if artifacts are missing')
    .option('--boot-timeout <seconds>', 'how long to wait for the guest agent', '120')
    .option('--stop-timeout <seconds>', 'grace period for the container on SIGINT/SIGTERM', '10')
    .option('--no-snapshot', 'boot cold: neither restore nor save a startup snapshot (env FCVM_NO_SNAPSHOT=1)')
    .passThroughOptions()
    .action(async (image: string | undefined, command: string[], flags: RunFlags) => {
      const opts = runOptionsFromFlags(image, command, flags);
      const ctx = host.context();
      // Loaded on use: `fcvm ls` and `fcvm exec` should not pay for the boot path.
      const { podmanRun } = await import('../../../vm/podman-run.js');
      host.setExitCode(await withInterrupts((interrupt) => podmanRun(opts, { layout: ctx.layout, log: ctx.log, out: process.stderr, interrupt })));
    });
}
