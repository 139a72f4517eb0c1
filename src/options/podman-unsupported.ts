import { Option } from 'commander';
import { errors } from '../errors/catalogue.js';

/** A `podman run` flag that fcvm refuses, with why and what does the job instead. */
export interface UnsupportedFlag {
  /** Commander's flag spec: the names as podman spells them, and a value if it takes one. */
  spec: string;
  why: string;
  hint: string;
  /** On the way (shown in the README's table). */
  planned?: boolean;
}

const VM_LIMITS = 'the VM is the container\'s resource boundary';
const OWN_KERNEL = 'the container runs on the VM\'s own kernel, away from the host\'s namespaces';
const NO_ATTACH = 'fcvm has no attach: the container\'s output is the run\'s, or its log with -d';

/**
 * podman's other `run` flags. Each is refused by name, so a podman command line never
 * half-works; the table is also the README's. Switches take an optional value, as
 * podman's do (--read-only=true), so that spelling is refused by name too.
 */
export const PODMAN_RUN_UNSUPPORTED: readonly UnsupportedFlag[] = [
  { spec: '-m, --memory <limit>', why: VM_LIMITS, hint: 'Use --mem SIZE, the VM\'s memory (for example --mem 1G)' },
  { spec: '--memory-reservation <limit>', why: VM_LIMITS, hint: 'Use --mem SIZE' },
  { spec: '--memory-swap <limit>', why: 'the VM has no swap', hint: 'Use --mem SIZE' },
  { spec: '--memory-swappiness <n>', why: 'the VM has no swap', hint: 'Use --mem SIZE' },
  { spec: '--cpus <n>', why: VM_LIMITS, hint: 'Use --cpu N, the VM\'s vCPUs' },
  { spec: '-c, --cpu-shares <n>', why: VM_LIMITS, hint: 'Use --cpu N' },
  { spec: '--cpu-period <us>', why: VM_LIMITS, hint: 'Use --cpu N' },
  { spec: '--cpu-quota <us>', why: VM_LIMITS, hint: 'Use --cpu N' },
  { spec: '--cpu-rt-period <us>', why: VM_LIMITS, hint: 'Use --cpu N' },
  { spec: '--cpu-rt-runtime <us>', why: VM_LIMITS, hint: 'Use --cpu N' },
  { spec: '--cpuset-cpus <list>', why: VM_LIMITS, hint: 'Use --cpu N' },
  { spec: '--cpuset-mems <list>', why: VM_LIMITS, hint: 'Use --mem SIZE' },
  { spec: '--pids-limit <n>', why: VM_LIMITS, hint: 'Use --cpu and --mem to size the VM' },
  { spec: '--blkio-weight <n>', why: VM_LIMITS, hint: 'Use --cpu and --mem to size the VM' },
  { spec: '--blkio-weight-device <dev:w>', why: VM_LIMITS, hint: 'Use --cpu and --mem to size the VM' },
  { spec: '--device-read-bps <dev:rate>', why: VM_LIMITS, hint: 'Use --cpu and --mem to size the VM' },
  { spec: '--device-read-iops <dev:rate>', why: VM_LIMITS, hint: 'Use --cpu and --mem to size the VM' },
  { spec: '--device-write-bps <dev:rate>', why: VM_LIMITS, hint: 'Use --cpu and --mem to size the VM' },
  { spec: '--device-write-iops <dev:rate>', why: VM_LIMITS, hint: 'Use --cpu and --mem to size the VM' },
  { spec: '--oom-kill-disable [bool]', why: VM_LIMITS, hint: 'Give the VM more memory with --mem' },
  { spec: '--oom-score-adj <n>', why: VM_LIMITS, hint: 'Give the VM more memory with --mem' },
  { spec: '--cgroup-parent <path>', why: VM_LIMITS, hint: 'Size the VM with --cpu and --mem' },
  { spec: '--cgroup-conf <k=v>', why: VM_LIMITS, hint: 'Size the VM with --cpu and --mem' },
  { spec: '--cgroupns <mode>', why: OWN_KERNEL, hint: 'Leave it out' },
  { spec: '--cgroups <mode>', why: OWN_KERNEL, hint: 'Leave it out' },
  { spec: '--pid <mode>', why: OWN_KERNEL, hint: 'Leave it out; "fcvm exec NAME --vm" reaches the guest OS' },
  { spec: '--ipc <mode>', why: OWN_KERNEL, hint: 'Leave it out' },
  { spec: '--uts <mode>', why: OWN_KERNEL, hint: 'Use --hostname to name the VM and its container' },
  { spec: '--userns <mode>', why: OWN_KERNEL, hint: 'Leave it out: the VM is the isolation boundary' },
  { spec: '--uidmap <map>', why: OWN_KERNEL, hint: 'Leave it out: the VM is the isolation boundary' },
  { spec: '--gidmap <map>', why: OWN_KERNEL, hint: 'Leave it out: the VM is the isolation boundary' },
  { spec: '--subuidname <name>', why: OWN_KERNEL, hint: 'Leave it out: the VM is the isolation boundary' },
  { spec: '--subgidname <name>', why: OWN_KERNEL, hint: 'Leave it out: the VM is the isolation boundary' },
  { spec: '--pod <name>', why: 'each container is a VM of its own; there are no pods', hint: 'Run one VM per container and connect them through published ports (-p)' },
  { spec: '--pod-id-file <file>', why: 'each container is a VM of its own; there are no pods', hint: 'Run one VM per container' },
  { spec: '--ip <addr>', why: 'the guest\'s address is set by the network mode', hint: 'Publish ports with -p; "fcvm ls" shows the guest IP' },
  { spec: '--ip6 <addr>', why: 'the guest has IPv4 only', hint: 'Publish ports with -p' },
  { spec: '--mac-address <mac>', why: 'the guest\'s MAC is derived from the VM', hint: 'Leave it out' },
  { spec: '--network-alias <alias>', why: 'there is no container network to alias in', hint: 'Reach the VM through a published port (-p)' },
  { spec: '--device <dev>', why: 'the VM has none of the host\'s devices', hint: 'Use --privileged for the guest\'s own devices' },
  { spec: '--device-cgroup-rule <rule>', why: 'the VM has none of the host\'s devices', hint: 'Use --privileged for the guest\'s own devices' },
  { spec: '--volumes-from <ctr>', why: 'each container is a VM of its own', hint: 'Map the same host directory with -v into both' },
  { spec: '--image-volume <mode>', why: 'image volumes stay inside the VM', hint: 'Leave it out' },
  { spec: '--seccomp-policy <policy>', why: 'not passed to the guest yet', hint: 'Leave it out', planned: true },
  { spec: '--env-host [bool]', why: 'fcvm\'s environment stays on the host', hint: 'Name each variable with -e KEY (a bare key copies its value)' },
  { spec: '--env-merge <k=v>', why: 'not supported', hint: 'Give the whole value with -e KEY=VALUE' },
  { spec: '--secret <secret>', why: 'podman secrets live on the host', hint: 'Pass it with -e or a file mapped with -v', planned: true },
  { spec: '--init-path <path>', why: 'the guest has its own init for containers', hint: 'Use --init' },
  { spec: '--health-on-failure <action>', why: 'a VM is not restarted or killed for its health', hint: 'Watch the status in "fcvm ls"' },
  { spec: '-a, --attach <stream>', why: NO_ATTACH, hint: 'Use -i/-t for an attached run, or -d and "fcvm logs -f NAME"' },
  { spec: '--detach-keys <keys>', why: NO_ATTACH, hint: 'Use -d and "fcvm logs -f NAME"' },
  { spec: '--sig-proxy [bool]', why: 'signals to fcvm always stop the container (SIGTERM, then SIGKILL after --stop-timeout)', hint: 'Leave it out; with -it, Ctrl-C goes to the container' },
  { spec: '--restart <policy>', why: 'a VM is not restarted when it ends', hint: 'Run fcvm under a service manager (a systemd unit) to restart it' },
  { spec: '--requires <ctr>', why: 'each container is a VM of its own', hint: 'Start the VMs in order' },
  { spec: '--log-driver <driver>', why: 'fcvm keeps its own bounded, rotated log per VM', hint: 'Read it with "fcvm logs NAME"' },
  { spec: '--log-opt <opt>', why: 'fcvm keeps its own bounded, rotated log per VM', hint: 'Read it with "fcvm logs NAME"' },
  { spec: '--cidfile <file>', why: 'the container\'s ID lives in the guest', hint: 'Use the VM name; "fcvm inspect NAME" has the rest' },
  { spec: '--conmon-pidfile <file>', why: 'conmon runs in the guest', hint: 'Use "fcvm ls" for the supervisor and VMM PIDs' },
  { spec: '--pidfile <file>', why: 'the container\'s PID lives in the guest', hint: 'Use "fcvm ls" for the supervisor and VMM PIDs' },
  { spec: '--sdnotify <mode>', why: 'not supported', hint: 'Poll "fcvm ls --json" for the status' },
  { spec: '--systemd <mode>', why: 'not supported', hint: 'Leave it out' },
  { spec: '--platform <os/arch>', why: 'the guest is linux/amd64', hint: 'Use an amd64 image' },
  { spec: '--arch <arch>', why: 'the guest is linux/amd64', hint: 'Use an amd64 image' },
  { spec: '--os <os>', why: 'the guest is linux/amd64', hint: 'Use an amd64 image' },
  { spec: '--variant <v>', why: 'the guest is linux/amd64', hint: 'Use an amd64 image' },
  { spec: '--rootfs [bool]', why: 'images come from podman storage or a registry', hint: 'Import the directory first: tar -C DIR -c . | podman import - localhost/NAME' },
  { spec: '--decryption-key <key>', why: 'encrypted images are not supported', hint: 'Use an unencrypted image' },
  { spec: '--disable-content-trust [bool]', why: 'not supported', hint: 'Leave it out' },
  { spec: '--passwd-entry <entry>', why: 'not supported', hint: 'Leave it out' },
  { spec: '--group-entry <entry>', why: 'not supported', hint: 'Leave it out' },
  { spec: '--chrootdirs <dir>', why: 'not supported', hint: 'Leave it out' },
  { spec: '--personality <p>', why: 'not supported', hint: 'Leave it out' },
  { spec: '--preserve-fds <n>', why: 'file descriptors do not cross into a VM', hint: 'Pass data with -i (stdin) or a file mapped with -v' },
  { spec: '--hostuser <user>', why: 'host users do not exist in the VM', hint: 'Use -u UID:GID' },
  { spec: '--http-proxy [bool]', why: 'the host\'s proxy variables stay on the host', hint: 'Pass them with -e HTTP_PROXY -e HTTPS_PROXY' },
  { spec: '-q, --quiet [bool]', why: 'a pull in the guest prints nothing already', hint: 'Leave it out' },
  { spec: '--rmi [bool]', why: 'the image is the guest\'s copy, which goes with the VM', hint: 'Leave it out' },
];

/** Commander's attribute for a flag ("--cap-add" -> "capAdd"; "--no-hosts" -> "hosts", false when given). */
function attributeOf(spec: string): { key: string; given: (v: unknown) => boolean } {
  const long = spec.match(/--([a-z0-9-]+)/)![1]!;
  const negated = long.startsWith('no-');
  const key = (negated ? long.slice(3) : long).replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  return { key, given: negated ? (v) => v === false : (v) => v !== undefined };
}

/** The refused flags as hidden commander options, so they are parsed with their values, then refused by name. */
export function unsupportedOptions(): Option[] {
  return PODMAN_RUN_UNSUPPORTED.map((u) => new Option(u.spec).hideHelp());
}

/** Throws for the first refused flag in `flags`, naming it with why and what to use. Pure. */
export function refuseUnsupported(flags: object): void {
  for (const u of PODMAN_RUN_UNSUPPORTED) {
    const a = attributeOf(u.spec);
    if (!a.given((flags as Record<string, unknown>)[a.key])) continue;
    const name = u.spec.match(/--[a-z0-9-]+/)![0];
    throw errors.unsupportedOption(name, u.why, u.hint);
  }
}
