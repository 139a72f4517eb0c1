import { randomBytes } from 'node:crypto';
import { parseImageRef } from './image-ref.js';
import { errors } from '../errors/catalogue.js';
import type { AccelChoice } from '../vmm/accel.js';
import { parseChoice, parseCpus, parseEnv, parseMemory, splitCommand, validateName } from './parse.js';
import { parseExpose, parsePublish, type ExposedPort, type PortMapping } from '../net/publish.js';
import { parseTlsVerify, podmanRunExtras, type PodmanRunExtras, type PodmanRunFlags, type RunFiles } from './podman-run-flags.js';
import { refuseUnsupported } from './podman-unsupported.js';
import { checkVolumes, mapSpecs, type VolumeMapping } from './volumes.js';
import { mountFlagSpec, volumeFlagSpec } from './podman-volumes.js';
import { parseHealthFlags, type HealthFlags } from './health-flags.js';
import type { HealthOverride } from '../protocol/healthcheck.js';
import { KERNEL_PROFILES, type KernelProfile } from '../setup/kernel-profile.js';
import { parseKernelPath } from './kernel-path.js';

export type NetworkMode = 'bridged' | 'rootless' | 'none';

export type HypervisorChoice = 'qemu' | 'firecracker' | 'auto';

/** Validated options of `fcvm podman run`; podman's own run flags are in PodmanRunExtras. */
export interface RunOptions extends Omit<PodmanRunExtras, 'envFromFiles'> {
  name: string;
  image: string;
  /** Replaces the image's CMD when set. */
  command: string[] | undefined;
  env: Record<string, string>;
  privileged: boolean;
  vcpus: number;
  /** --cpu was given; else the default 2 is capped at the host's CPUs, and a nested-profile VM under TCG gets NESTED_TCG_VCPUS. */
  vcpusGiven: boolean;
  memoryMiB: number;
  hypervisor: HypervisorChoice;
  accel: AccelChoice;
  setup: boolean;
  bootTimeoutSeconds: number;
  stopGraceSeconds: number;
  network: NetworkMode;
  publish: PortMapping[];
  /** -P: the image's EXPOSE ports and `expose` get any free host port (when the image is planned). */
  publishAll?: boolean;
  /** --replace: a running VM of this name is stopped first (as podman run --replace). */
  replace?: boolean;
  /** --expose: ports -P publishes besides the image's. */
  expose?: ExposedPort[];
  /** Polled from the host through the VM's own network path. */
  healthCheck: { url: URL; timeoutSeconds: number } | undefined;
  /** podman's --health-* flags and --no-healthcheck: what they change of the image's HEALTHCHECK. */
  health?: HealthOverride;
  /** The VMM runs in its jail (false only with --no-jail, for debugging). */
  jail: boolean;
  /** Host directories mapped into the container (--map). */
  volumes: VolumeMapping[];
  /** --no-snapshot (or FCVM_NO_SNAPSHOT=1): always boot cold, neither use nor save a startup snapshot. */
  noSnapshot?: boolean;
  /** The guest's kernel profile: `nested` gives it virtualization extensions and KVM. */
  kernelProfile: KernelProfile;
  /** A kernel image of the user's own, booted instead of setup's (--kernel). */
  kernel: string | undefined;
}

/** The raw flags as commander hands them over. */
export interface RunFlags extends PodmanRunFlags, HealthFlags {
  name?: string;
  cpu?: string;
  mem?: string;
  env?: string[];
  cmd?: string;
  privileged?: boolean;
  hypervisor?: string;
  accel?: string;
  setup?: boolean;
  bootTimeout?: string;
  stopTimeout?: string;
  network?: string;
  publish?: string[];
  publishAll?: boolean | string;
  replace?: boolean | string;
  expose?: string[];
  healthCheck?: string;
  healthCheckTimeout?: string;
  /** false with --no-jail. */
  jail?: boolean;
  map?: string[];
  /** false with --no-snapshot. */
  snapshot?: boolean;
  kernelProfile?: string;
  kernel?: string;
}

function parseHealthUrl(v: string): URL {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw errors.invalidOption('--health-check', v, 'not a URL', 'Give an http:// URL as the guest sees it, e.g. http://localhost:8080/health');
  }
  if (url.protocol !== 'http:') throw errors.invalidOption('--health-check', v, 'only http:// is supported', 'Give an http:// URL as the guest sees it');
  return url;
}

function positiveSeconds(flag: string, v: string, zero = false): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || (n === 0 && !zero)) {
    throw errors.invalidOption(flag, v, `not a ${zero ? 'non-negative' : 'positive'} number of seconds`, `Give ${flag} in seconds, for example ${flag} 60`);
  }
  return n;
}

/** A podman switch: bare, or =true / =false. */
function parseSwitch(flag: string, v: string | boolean | undefined): boolean {
  if (v === undefined || v === false) return false;
  if (v === true || v === 'true') return true;
  if (v === 'false') return false;
  throw errors.invalidOption(flag, String(v), 'not true or false', `Write ${flag} or ${flag}=false`);
}

const withHealth = (health: HealthOverride | undefined) => (health ? { health } : {});

/** Turns flags into validated options. Pure apart from the random default name. */
export function runOptionsFromFlags(image: string | undefined, args: readonly string[], flags: RunFlags, env: NodeJS.ProcessEnv = process.env, files: RunFiles = {}): RunOptions {
  refuseUnsupported(flags);
  // A bad --tls-verify value is named before "no image" (a bare switch is --tls-verify=true, see switch-args.ts).
  parseTlsVerify(flags.tlsVerify);
  if (!image) throw errors.usage('no image given', 'Usage: fcvm podman run [options] IMAGE [-- COMMAND [ARG...]]');
  parseImageRef(image);
  // "--" separates fcvm's options from the container command; it is not part of it.
  if (args[0] === '--') args = args.slice(1);
  if (flags.cmd !== undefined && args.length > 0) {
    throw errors.usage('both --cmd and a command after the image were given', 'Use one of them: --cmd "CMD ARGS" or IMAGE -- CMD ARGS');
  }
  let command: string[] | undefined = args.length > 0 ? [...args] : undefined;
  const isRoot = (process.getuid?.() ?? 0) === 0;
  const network = parseChoice('--network', flags.network ?? (isRoot ? 'bridged' : 'rootless'), ['bridged', 'rootless', 'none'] as const);
  if (network === 'bridged' && !isRoot) {
    throw errors.invalidOption('--network', 'bridged', 'bridged networking needs root (namespaces, veth, iptables)', 'Use --network rootless, or run as root');
  }
  const publish = parsePublish(flags.publish ?? []);
  if (network === 'none' && publish.length > 0) {
    throw errors.invalidOption('--publish', flags.publish!.join(','), 'a VM with --network none has no ports to publish', 'Drop --publish, or use --network bridged or rootless');
  }
  const publishAllFlag = parseSwitch('--publish-all', flags.publishAll);
  if (network === 'none' && publishAllFlag) {
    throw errors.invalidOption('--publish-all', 'true', 'a VM with --network none has no ports to publish', 'Drop -P, or use --network bridged or rootless');
  }
  const expose = parseExpose(flags.expose ?? []);
  if (network === 'none' && flags.healthCheck) {
    throw errors.invalidOption('--health-check', flags.healthCheck, 'a VM with --network none cannot be checked over HTTP', 'Use --network bridged or rootless');
  }
  if (flags.cmd !== undefined) {
    command = splitCommand(flags.cmd);
    if (command.length === 0) throw errors.invalidOption('--cmd', flags.cmd, 'it is empty', 'Give a command, or leave --cmd out to run the image\'s CMD');
  }
  const { envFromFiles, ...extras } = podmanRunExtras(image, flags, files, env);
  return {
    ...extras,
    name: validateName(flags.name ?? `fcvm-${randomBytes(4).toString('hex')}`),
    image,
    command,
    env: { ...envFromFiles, ...parseEnv(flags.env ?? [], env) },
    privileged: flags.privileged ?? false,
    vcpus: parseCpus(flags.cpu ?? '2'),
    vcpusGiven: flags.cpu !== undefined,
    memoryMiB: parseMemory(flags.mem ?? '512'),
    hypervisor: parseChoice('--hypervisor', flags.hypervisor ?? env.FCVM_HYPERVISOR ?? 'auto', ['qemu', 'firecracker', 'auto'] as const),
    accel: parseChoice('--accel', flags.accel ?? 'auto', ['auto', 'kvm', 'tcg'] as const),
    setup: flags.setup ?? false,
    bootTimeoutSeconds: positiveSeconds('--boot-timeout', flags.bootTimeout ?? '120'),
    // 0, as podman's: the stop signal, then at once SIGKILL.
    stopGraceSeconds: positiveSeconds('--stop-timeout', flags.stopTimeout ?? '10', true),
    network,
    publish,
    ...(publishAllFlag ? { publishAll: true } : {}),
    ...(parseSwitch('--replace', flags.replace) ? { replace: true } : {}),
    ...(expose.length > 0 ? { expose } : {}),
    healthCheck: flags.healthCheck
      ? { url: parseHealthUrl(flags.healthCheck), timeoutSeconds: positiveSeconds('--health-check-timeout', flags.healthCheckTimeout ?? '5') }
      : undefined,
    ...withHealth(parseHealthFlags(flags)),
    jail: flags.jail !== false,
    // --map and podman's -v/--volume and --mount: one engine, checked together.
    volumes: checkVolumes([...mapSpecs(flags.map ?? []), ...(flags.volume ?? []).map((v) => volumeFlagSpec(v)), ...(flags.mount ?? []).map((v) => mountFlagSpec(v))]),
    ...(flags.snapshot === false || env.FCVM_NO_SNAPSHOT === '1' ? { noSnapshot: true } : {}),
    kernelProfile: parseChoice('--kernel-profile', flags.kernelProfile ?? 'default', KERNEL_PROFILES),
    kernel: flags.kernel === undefined ? undefined : parseKernelPath(flags.kernel),
  };
}
