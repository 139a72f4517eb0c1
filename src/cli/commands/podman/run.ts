import { Command, Option } from 'commander';
import { runOptionsFromFlags, type RunFlags } from '../../../options/run-options.js';
import { readRunFiles } from '../../../options/run-files.js';
import { unsupportedOptions } from '../../../options/podman-unsupported.js';
import { passthroughOptions } from '../../../options/podman-passthrough.js';
import { switchesWithEquals } from '../../../options/switch-args.js';
import { withInterrupts } from '../../interrupts.js';
import type { CommandHost } from '../../command-host.js';
import { detachedGlobals } from '../supervise.js';
import { warnIfNotATerminal } from '../../tty-warning.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `fcvm podman run [options] IMAGE [-- COMMAND...]` */
export function podmanRunCommand(host: CommandHost): Command {
  const cmd = new Command('run')
    // -h is podman run's --hostname; help is --help alone.
    .helpOption('--help', 'display help for command')
    .description('run a container from IMAGE in a new microVM; exits with the container\'s exit code')
    .argument('[image]', 'image: a name in the host\'s podman storage (localhost/NAME), or a remote name the guest pulls')
    .argument('[command...]', 'command and arguments, replacing the image\'s CMD (put them after "--")')
    .option('--name <name>', 'VM name (letters, digits, . _ -; at most 63)')
    .option('-i, --interactive', 'forward stdin to the container (with EOF)')
    .option('-t, --tty', 'give the container a terminal; with -i, a raw local terminal whose keys (Ctrl-C too) and size go to it')
    .option('-d, --detach', 'run in the background: print the VM name once it is starting; output goes to its log ("fcvm logs")')
    .option('--rm', 'keep nothing once it ends (otherwise ps -a, logs and inspect show it until rm, as podman\'s exited containers)')
    .option('--replace [bool]', 'stop a running VM of this name first, as podman run --replace (an ended one is always replaced)')
    .option('--cpu <n>', 'vCPUs (default 2, at most the host\'s CPUs; 1 for a nested-profile VM under TCG)')
    .option('--mem <mib>', 'guest memory in MiB (or with M/G suffix)', '512')
    .option('-e, --env <KEY=VALUE,...>', 'environment for the container (repeatable, comma-separated)', collect)
    .option('--env-file <file>', 'environment from a file of KEY=VALUE lines (repeatable); --env wins', collect)
    .option('-w, --workdir <dir>', 'working directory in the container')
    .option('-u, --user <user[:group]>', 'user (name or ID) the container runs as')
    .option('--entrypoint <command>', 'replace the image\'s ENTRYPOINT (a command, or a JSON array; "" clears it)')
    .option('-h, --hostname <name>', 'host name of the VM and its container (default: the VM name)')
    .option('-l, --label <key=value>', 'label the VM (repeatable); see "fcvm ls --filter label=KEY=VALUE"', collect)
    .option('--label-file <file>', 'labels from a file of KEY=VALUE lines (repeatable; --label wins)', collect)
    .option('--init', 'run a tiny init (catatonit) as the container\'s PID 1: it forwards signals and reaps zombies')
    .option('--cmd <command>', 'command line for the container, split like a shell would (instead of "-- CMD")')
    .option('--privileged', 'give the container all capabilities and devices of the guest')
    .addOption(new Option('--pull <policy>', 'always (pull in the guest), missing (host storage first) or never (host storage only)').default('missing'))
    .option('--tls-verify [bool]', 'check the registry\'s TLS certificate; --tls-verify=false also allows plain HTTP')
    .option('--cert-dir <dir>', 'the registry\'s CA (DIR/ca.crt) and client certificates, as podman\'s --cert-dir')
    .option('--creds <user:password>', 'credentials for the image\'s registry (they reach the guest only for the pull)')
    .option('--authfile <file>', 'podman\'s auth.json to take the registry\'s credentials from (default: podman\'s own, from "podman login")')
    .option('--hypervisor <name>', 'qemu, firecracker or auto (env FCVM_HYPERVISOR; default auto: Firecracker where it can run, else QEMU)')
    .option('--accel <accel>', 'auto, kvm or tcg (auto uses KVM only if the guest boots under it)', 'auto')
    .option('--network <mode>', 'bridged (root: own netns, veth, TAP, NAT), rootless (no privilege: QEMU user networking) or none; default bridged for root, rootless otherwise')
    .option('-p, --publish <[hostip:]hostport:guestport[/proto],...>', 'publish guest ports on the host (repeatable, comma-separated)', collect)
    .option('-P, --publish-all [bool]', 'publish every port the image EXPOSEs (and --expose names) on any free host port')
    .option('--expose <port[/proto],...>', 'a port to publish with -P, besides the image\'s EXPOSE (repeatable)', collect)
    .option('--map <HOST:GUEST[:ro],...>', 'map a host directory into the container (repeatable, comma-separated); ro: read-only', collect)
    .option('-v, --volume <HOST-DIR:CONTAINER-DIR[:ro]>', 'podman\'s spelling of --map (repeatable; options ro, rw; z, Z, rbind change nothing)', collect)
    .option('--mount <type=bind,source=DIR,target=DIR[,readonly]>', 'podman\'s --mount, for type=bind (repeatable)', collect)
    .option('--health-check <url>', 'HTTP URL as the guest sees it, polled from the host; 2xx/3xx is healthy')
    .option('--health-check-timeout <seconds>', 'timeout of each health probe', '5')
    .option('--health-cmd <command>', 'a health check run in the container: a shell command, or a JSON array (CMD form); none turns the image\'s off')
    .option('--health-interval <duration>', 'time between health checks (default 30s; disable turns them off)')
    .option('--health-timeout <duration>', 'how long one health check may take (default 30s)')
    .option('--health-retries <n>', 'failures in a row that make the container unhealthy (default 3)')
    .option('--health-start-period <duration>', 'time after the start in which failures do not count (default 0s)')
    .option('--no-healthcheck', 'run no health check, not even the image\'s HEALTHCHECK')
    .option('--kernel-profile <profile>', 'default, or nested: the guest can run VMs (virtualization extensions, /dev/kvm; "fcvm setup --kernel-profile nested" first)', 'default')
    .option('--kernel <path>', 'boot this kernel image (a bzImage for QEMU) instead of setup\'s')
    .option('--setup', 'run "fcvm setup" first if artifacts are missing')
    .option('--boot-timeout <seconds>', 'how long to wait for the guest agent', '120')
    .option('--stop-timeout <seconds>', 'grace period for the container on SIGINT/SIGTERM', '10')
    .option('--no-snapshot', 'boot cold: neither restore nor save a startup snapshot (env FCVM_NO_SNAPSHOT=1)')
    .option('--no-jail', 'UNSAFE, for debugging only: run the VMM as root with every capability, in the host\'s namespaces, with no seccomp filter and no cgroup limits')
    .passThroughOptions();
  for (const o of passthroughOptions()) cmd.addOption(o);
  for (const o of unsupportedOptions()) cmd.addOption(o);
  // podman's switches take a value only after "=" (--read-only IMAGE runs IMAGE).
  const parseOptions = cmd.parseOptions.bind(cmd);
  const shapes = cmd.options.map((o) => ({ short: o.short, long: o.long, takesValue: o.required, isSwitch: o.optional && !o.required }));
  cmd.parseOptions = (argv) => parseOptions(switchesWithEquals(argv, shapes));
  return cmd.action(async (image: string | undefined, command: string[], flags: RunFlags) => {
    const files = await readRunFiles(flags);
    const opts = runOptionsFromFlags(image, command, flags, process.env, files);
    const ctx = host.context();
    if (opts.detach) {
      const { launchDetached } = await import('../../../vm/detach.js');
      const r = await withInterrupts((interrupt) => launchDetached({ kind: 'run', opts }, detachedGlobals(ctx), host.diagnostics, interrupt));
      if ('name' in r) process.stdout.write(`${r.name}\n`);
      else host.setExitCode(r.exitCode);
      return;
    }
    warnIfNotATerminal(opts.interactive, opts.tty);
    // Loaded on use: `fcvm ls` and `fcvm exec` should not pay for the boot path.
    const { podmanRun } = await import('../../../vm/podman-run.js');
    // As podman run: the container's stdout and stderr are fcvm's own, with -i or without.
    const attach = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
    host.setExitCode(await withInterrupts((interrupt) => podmanRun(opts, { layout: ctx.layout, log: ctx.log, out: process.stderr, interrupt, attach })));
  });
}
