import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { planImage, type ImagePlan } from '../images/host-image.js';
import type { RunOptions } from '../options/run-options.js';
import { EVENTS, ExitedEventSchema, HealthEventSchema, METHODS, StartedEventSchema, type ContainerRun } from '../protocol/api.js';
import { Connection, RemoteError } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import type { Layout } from '../setup/layout.js';
import { requireManifest, type Manifest } from '../setup/manifest.js';
import { preflight, RUN_CHECKS } from '../setup/preflight.js';
import { setup } from '../setup/setup.js';
import { reapStale } from '../state/reaper.js';
import { StateStore } from '../state/store.js';
import { STATE_SCHEMA, withStatus, type VmState, type VmStatus } from '../state/vm-state.js';
import { CleanupStack } from '../util/cleanup-stack.js';
import { run } from '../util/exec.js';
import type { Logger } from '../util/log.js';
import { deadline, processStartTime } from '../util/proc.js';
import { runSteps, type Step } from '../util/steps.js';
import { resolveAccel } from '../vmm/accel.js';
import { consoleTail } from '../vmm/console.js';
import type { Accel, NicSpec, RunningVm, VmmDriver, VmSpec } from '../vmm/driver.js';
import { bridgedAddresses, loopbackFor, macFor, MAX_NET_INDEX, ROOTLESS } from '../net/addressing.js';
import { setupBridged } from '../net/bridged.js';
import { hostNetOps } from '../net/net-ops.js';
import { assertPortsFree, portInUse, samePort } from '../net/ports.js';
import { hostResolvers } from '../net/resolvers.js';
import { withFileLock } from '../util/file-lock.js';
import { isOwnerAlive } from '../state/store.js';
import { guestCmdline } from '../vmm/qemu/command.js';
import { hostTscKhz } from '../vmm/host-tsc.js';
import { LinePrefixer } from './output.js';
import { startControlServer } from './control-server.js';
import { startHttpHealth } from './http-health.js';
import { selectDriver } from './select-driver.js';

export interface RunEnv {
  layout: Layout;
  log: Logger;
  /** Where container output and progress go (the user's stderr). */
  out: Writable;
  /** Aborted with the signal name as reason on SIGINT/SIGTERM. */
  interrupt: AbortSignal;
}

/** What the boot steps fill in, in order. */
interface Ctx {
  opts: RunOptions;
  env: RunEnv;
  cleanup: CleanupStack;
  store: StateStore;
  manifest: Manifest;
  driver: VmmDriver;
  image: ImagePlan;
  accel: Accel;
  state: VmState;
  nics: NicSpec[] | undefined;
  netns: string | undefined;
  guestNet: GuestNet | undefined;
  configured: Promise<unknown>;
  spec: VmSpec;
  vm: RunningVm;
  conn: Connection;
}

const IMAGE_DISK = 'image';
const ROOT_DISK = 'root';

/** The boot of a cold VM, as named steps. */
export const coldBootSteps: readonly Step<Ctx>[] = [
  { name: 'preflight', run: () => preflight(RUN_CHECKS) },
  { name: 'reap', run: async (c) => void (await reapStale(c.store, c.env.layout.vmRuntime, c.env.log)) },
  { name: 'artifacts', run: async (c) => (c.manifest = await ensureArtifacts(c)) },
  { name: 'driver', run: async (c) => (c.driver = await selectDriver(c.opts.hypervisor, c.env.log)) },
  { name: 'image', run: async (c) => (c.image = await planImage(c.opts.image, c.env.layout.imageCache)) },
  { name: 'claim-name', run: claimName },
  { name: 'accel', run: async (c) => (c.accel = await resolveAccel(c.opts.accel, c.manifest, c.env.layout.accelCache, c.env.log)) },
  { name: 'network', run: prepareNetwork },
  { name: 'disks', run: prepareDisks },
  { name: 'boot', run: boot },
  { name: 'agent', run: connectAgent },
  // Not awaited here: the agent handles requests in order, so the container's run request
  // goes out right behind it and the configure result is checked before the container runs.
  { name: 'configure', run: (c) => (c.configured = c.conn.request(METHODS.configure, { hostname: c.opts.name, clockMs: Date.now(), ...(c.guestNet ? { network: c.guestNet } : {}) })) },
  { name: 'control-socket', run: openControlSocket },
];

/**
 * `fcvm podman run`: boots a VM, runs the container in it, streams its output, and
 * resolves with the container's exit code. Everything acquired is released on return.
 */
export async function podmanRun(opts: RunOptions, env: RunEnv): Promise<number> {
  const cleanup = new CleanupStack();
  const ctx = { opts, env, cleanup, store: new StateStore(env.layout.vmState) } as Ctx;
  try {
    await runSteps(coldBootSteps, ctx, env.log);
    return await superviseContainer(ctx);
  } finally {
    if (ctx.vm) {
      await ctx.vm.stop().catch(() => {});
      if (env.log.isLevelEnabled('debug')) env.log.debug({ console: await consoleTail(ctx.vm.consoleLog, 30) }, 'guest console');
    }
    const failures = await cleanup.run((name, e) => env.log.warn({ err: e }, `cleanup "${name}" failed`));
    if (failures.length > 0) env.log.debug({ failures: failures.length }, 'cleanup had failures');
  }
}

async function ensureArtifacts(c: Ctx): Promise<Manifest> {
  try {
    const m = await requireManifest(c.env.layout);
    for (const p of [m.kernel.path, m.initrd.path, m.rootfs.path]) {
      if (!(await stat(p).then(() => true, () => false))) throw errors.setupMissing(c.env.layout.base, p);
    }
    return m;
  } catch (e) {
    if (!c.opts.setup || !isFcvmError(e) || e.code !== 'SETUP_MISSING') throw e;
    return setup({ layout: c.env.layout, force: false, log: c.env.log, progress: (l) => c.env.out.write(`setup: ${l}\n`) });
  }
}

/**
 * Claims the name and allocates the VM's network index under the allocation lock, so
 * VMs started at the same moment get distinct addresses and cannot publish one port twice.
 */
async function claimName(c: Ctx): Promise<void> {
  await assertPortsFree(c.opts.publish);
  await withFileLock(join(c.env.layout.locks, 'alloc.lock'), () => claimLocked(c));
}

async function claimLocked(c: Ctx): Promise<void> {
  const live = (await c.store.list()).flatMap((e) => (e.ok && isOwnerAlive(e.state) ? [e.state] : []));
  for (const other of live) {
    for (const m of c.opts.publish) {
      const clash = other.network.publish.find((o) => samePort(o, m));
      if (clash && other.name !== c.opts.name) throw portInUse(m, `published by VM "${other.name}"`);
    }
  }
  const used = new Set(live.map((s) => s.netIndex));
  let netIndex = 0;
  while (used.has(netIndex)) netIndex++;
  if (netIndex > MAX_NET_INDEX) throw errors.preflight('network addresses', `all ${MAX_NET_INDEX + 1} are in use`, 'Stop some VMs');
  const pid = process.pid;
  const start = processStartTime(pid)!;
  // The run directory carries the owner's identity, so a reaper can tell it is orphaned.
  const runDir = join(c.env.layout.vmRuntime, `${randomBytes(3).toString('hex')}-${pid}-${start}`);
  const state: VmState = {
    schema: STATE_SCHEMA,
    name: c.opts.name,
    id: runDir.slice(runDir.lastIndexOf('/') + 1),
    pid,
    pidStartTime: start,
    status: 'starting',
    image: c.opts.image,
    hypervisor: c.driver.name,
    vcpus: c.opts.vcpus,
    memoryMiB: c.opts.memoryMiB,
    runDir,
    createdAt: new Date().toISOString(),
    transitions: [{ status: 'starting', at: new Date().toISOString() }],
    netIndex,
    network: { mode: c.opts.network, loopback: loopbackFor(netIndex), publish: c.opts.publish },
  };
  const owner = await c.store.claim(state);
  if (owner) throw errors.nameInUse(c.opts.name, owner.pid);
  c.cleanup.push('remove state file', () => c.store.remove(state.name));
  c.state = state;
}

/** The guest's address, gateway and resolvers, handed to the agent in vm.configure. */
interface GuestNet {
  address: string;
  prefix: number;
  gateway: string;
  dns: string[];
}

async function prepareNetwork(c: Ctx): Promise<void> {
  const { mode, publish } = c.opts.network === 'none' ? { mode: 'none' as const, publish: [] } : { mode: c.opts.network, publish: c.opts.publish };
  const mac = macFor(c.state.id);
  if (mode === 'none') return;
  if (!c.driver.capabilities.nicKinds.includes(mode === 'bridged' ? 'tap' : 'user')) {
    throw errors.hypervisorUnavailable(c.driver.name, `it cannot do --network ${mode}`);
  }
  if (mode === 'bridged') {
    const a = bridgedAddresses(c.state.netIndex, c.state.id);
    await setupBridged(a, publish, c.state.id, hostNetOps, c.cleanup);
    c.nics = [{ kind: 'tap', id: 'net0', tap: a.tap, mac }];
    c.netns = a.netns;
    c.guestNet = { address: a.guestIp, prefix: a.prefix, gateway: a.gatewayIp, dns: await hostResolvers(a.gatewayIp) };
    c.state = { ...c.state, network: { ...c.state.network, guestIp: a.guestIp, hostPath: a.nsVethIp, netns: a.netns } };
  } else {
    const loopback = c.state.network.loopback;
    // The VM's own loopback address forwards the health-check port, so the host can reach the guest.
    const healthPort = c.opts.healthCheck ? Number(c.opts.healthCheck.url.port || 80) : undefined;
    const forwards = [
      ...publish.map((m) => ({ proto: m.proto, hostIp: m.hostIp, hostPort: m.hostPort, guestPort: m.guestPort })),
      ...(healthPort ? [{ proto: 'tcp' as const, hostIp: loopback, hostPort: healthPort, guestPort: healthPort }] : []),
    ];
    c.nics = [{ kind: 'user', id: 'net0', mac, hostForwards: forwards }];
    c.guestNet = { address: ROOTLESS.guestIp, prefix: ROOTLESS.prefix, gateway: ROOTLESS.gatewayIp, dns: [ROOTLESS.dnsIp] };
    c.state = { ...c.state, network: { ...c.state.network, guestIp: ROOTLESS.guestIp, hostPath: loopback } };
  }
  await c.store.update(c.state);
}

async function prepareDisks(c: Ctx): Promise<void> {
  await mkdir(c.state.runDir, { recursive: true, mode: 0o700 });
  c.cleanup.push('remove run directory', () => rm(c.state.runDir, { recursive: true, force: true }));
  // A qcow2 overlay over the shared base: starting a VM copies nothing.
  const overlay = join(c.state.runDir, 'root.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', c.manifest.rootfs.path, overlay]);
  c.spec = {
    name: c.opts.name,
    runDir: c.state.runDir,
    kernel: c.manifest.kernel.path,
    initrd: c.manifest.initrd.path,
    cmdline: guestCmdline(guestKernelArgs(c.accel)),
    vcpus: c.opts.vcpus,
    memoryMiB: c.opts.memoryMiB,
    accel: c.accel,
    disks: [
      { id: ROOT_DISK, path: overlay, format: 'qcow2', readOnly: false },
      ...(c.image.kind === 'archive' ? [{ id: IMAGE_DISK, path: c.image.archive, format: 'raw' as const, readOnly: true }] : []),
    ],
    nics: c.nics ?? [],
    ...(c.netns ? { netns: c.netns } : {}),
  };
}

/**
 * Extra kernel arguments: under TCG, the TSC rate, so a busy host cannot hang
 * calibration; then FCVM_KERNEL_ARGS, for debugging.
 */
function guestKernelArgs(accel: Accel, env: NodeJS.ProcessEnv = process.env): string[] {
  const khz = accel === 'tcg' ? hostTscKhz() : undefined;
  return [...(khz ? [`tsc_early_khz=${khz}`] : []), ...(env.FCVM_KERNEL_ARGS?.split(/\s+/).filter(Boolean) ?? [])];
}

async function boot(c: Ctx): Promise<void> {
  c.vm = await c.driver.boot(c.spec, c.cleanup);
  c.state = { ...c.state, vmmPid: c.vm.pid, accel: c.accel };
  await c.store.update(c.state);
}

async function connectAgent(c: Ctx): Promise<void> {
  const transport = await c.vm.connectAgent();
  const conn = new Connection(transport, { role: 'host', features: FEATURES });
  c.cleanup.push('close agent connection', () => conn.close());
  const timeoutMs = c.opts.bootTimeoutSeconds * 1000;
  const died = c.vm.exited.then(async (x) => {
    throw errors.vmmExited(`VMM exited with ${x.signal ?? `code ${x.code}`} before the agent answered`, await consoleTail(c.vm.consoleLog));
  });
  died.catch(() => {});
  try {
    await Promise.race([conn.handshake(timeoutMs), died, interrupted(c.env.interrupt)]);
  } catch (e) {
    if (isFcvmError(e)) throw e;
    // A guest that powers off closes the socket before QEMU's exit is seen: tell them apart.
    const exit = await Promise.race([c.vm.exited, deadline(1000).then(() => undefined)]);
    if (exit) {
      throw errors.vmmExited(`the guest stopped before its agent answered (VMM ${exit.signal ?? `exit code ${exit.code}`})`, await consoleTail(c.vm.consoleLog));
    }
    if ((e as Error).name === 'TimeoutError') {
      throw errors.agentTimeout('the guest agent\'s hello', c.opts.bootTimeoutSeconds, await consoleTail(c.vm.consoleLog));
    }
    throw errors.protocol((e as Error).message);
  }
  c.conn = conn;
}

async function openControlSocket(c: Ctx): Promise<void> {
  const server = await startControlServer(c.state.runDir, c.conn, c.env.log);
  c.cleanup.push('close control socket', () => server.close());
}

function interrupted(signal: AbortSignal): Promise<never> {
  const p = new Promise<never>((_, reject) => {
    const fail = () => reject(errors.interrupted(String(signal.reason), exitCodeForSignal(String(signal.reason))));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
  p.catch(() => {});
  return p;
}

export function exitCodeForSignal(sig: string): number {
  return sig === 'SIGINT' ? 130 : sig === 'SIGTERM' ? 143 : sig === 'SIGHUP' ? 129 : 128;
}

function imageSource(image: ImagePlan): ContainerRun['image'] {
  return image.kind === 'archive' ? { kind: 'archive', diskSerial: IMAGE_DISK, id: image.id } : { kind: 'pull', ref: image.ref };
}

/** Starts the container and waits for its exit, a signal, or the VM's death. */
async function superviseContainer(c: Ctx): Promise<number> {
  const { conn, env } = c;
  const out = conn.openChannel();
  const err = conn.openChannel();
  const outLines = new LinePrefixer('[ctr:out]', env.out);
  const errLines = new LinePrefixer('[ctr:err]', env.out);
  out.on('data', (d) => outLines.push(d));
  err.on('data', (d) => errLines.push(d));
  let ended = 0;
  let resolveDrained!: () => void;
  const drained = new Promise<void>((r) => (resolveDrained = r));
  const onEnd = () => ++ended === 2 && resolveDrained();
  out.on('end', () => (outLines.flush(), onEnd()));
  err.on('end', () => (errLines.flush(), onEnd()));

  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  const setStatus = (status: VmStatus, detail?: string) => {
    c.state = withStatus(c.state, status, detail);
    void c.store.update(c.state).catch(() => {});
  };
  conn.onEvent((name, data) => {
    if (name === EVENTS.started) {
      const pid = StartedEventSchema.safeParse(data).data?.pid;
      env.log.debug({ pid }, 'container started');
      // Without a HEALTHCHECK or --health-check, a started container is a healthy one.
      const hc = c.opts.healthCheck;
      setStatus(c.image.healthcheck || hc ? 'running' : 'healthy');
      if (hc && c.state.network.hostPath) {
        const stop = startHttpHealth(hc.url, c.state.network.hostPath, hc.timeoutSeconds * 1000, (status) => {
          if (c.state.status !== 'stopping') setStatus(status, `HTTP ${hc.url.href}`);
        });
        c.cleanup.push('stop HTTP health checks', stop);
      }
    } else if (name === EVENTS.health) {
      const h = HealthEventSchema.safeParse(data);
      if (h.success && c.state.status !== 'stopping') setStatus(h.data.status, h.data.output?.slice(0, 200));
    } else if (name === EVENTS.exited) {
      const parsed = ExitedEventSchema.safeParse(data);
      if (parsed.success) resolveExit(parsed.data.exitCode);
    }
  });
  const vmDied = c.vm.exited.then(async (x) => {
    throw errors.vmmExited(`VMM exited with ${x.signal ?? `code ${x.code}`}`, await consoleTail(c.vm.consoleLog));
  });
  const agentGone = conn.closed.then(async (e) => {
    // When the VM dies, its socket usually closes before the VMM's exit is seen.
    const exit = await Promise.race([c.vm.exited, deadline(1000).then(() => undefined)]);
    if (exit) throw errors.vmmExited(`VMM exited with ${exit.signal ?? `code ${exit.code}`}`, await consoleTail(c.vm.consoleLog));
    throw errors.protocol(`the agent connection closed: ${e?.message ?? 'unknown'}`);
  });
  // These only matter while raced; once the run is over they may settle unobserved.
  vmDied.catch(() => {});
  agentGone.catch(() => {});

  const plan: ContainerRun = {
    name: c.opts.name,
    image: imageSource(c.image),
    ...(c.opts.command ? { command: c.opts.command } : {}),
    env: c.opts.env,
    privileged: c.opts.privileged,
    cpus: c.opts.vcpus,
    memoryMiB: c.opts.memoryMiB,
    stdoutChannel: out.id,
    stderrChannel: err.id,
    ...(c.image.healthcheck ? { healthcheck: c.image.healthcheck } : {}),
  };
  try {
    const running = conn.request(METHODS.run, plan);
    running.catch(() => {});
    await Promise.race([c.configured.then(() => running), vmDied, interrupted(env.interrupt)]);
  } catch (e) {
    if (e instanceof RemoteError) {
      if (e.code === 'IMAGE_PULL_FAILED') throw errors.imagePullFailed(c.opts.image, e.message);
      if (e.code === 'IMAGE_LOAD_FAILED') throw errors.containerFailed(c.opts.image, e.message);
      throw errors.agent(METHODS.run, e.code, e.message);
    }
    throw e;
  }

  let signalled: string | undefined;
  let resolveGaveUp!: (code: number) => void;
  const gaveUp = new Promise<number>((r) => (resolveGaveUp = r));
  const stopOnSignal = async () => {
    signalled = String(env.interrupt.reason);
    env.log.info(`${signalled}: stopping the container (grace ${c.opts.stopGraceSeconds}s)`);
    setStatus('stopping', signalled);
    await conn.request(METHODS.stop, { graceSeconds: c.opts.stopGraceSeconds }, (c.opts.stopGraceSeconds + 10) * 1000).catch((e) => env.log.debug({ err: e }, 'stop request failed'));
    // The container had its grace period; whatever the guest does now, the VM goes.
    await deadline(5000);
    env.log.warn('the container did not report its exit after the stop; powering the VM off');
    resolveGaveUp(exitCodeForSignal(signalled));
  };
  // A second signal while stopping skips the rest of the grace period.
  let signals = 0;
  const forceOnSecondSignal = (sig: NodeJS.Signals) => {
    // The first signal is the one that started the stop (both listeners see it).
    if (++signals < 2 || !signalled) return;
    env.log.warn(`${sig} again: powering the VM off now`);
    resolveGaveUp(exitCodeForSignal(signalled));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, forceOnSecondSignal);
  c.cleanup.push('forget signal handlers', () => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, forceOnSecondSignal);
  });
  if (env.interrupt.aborted) void stopOnSignal();
  else env.interrupt.addEventListener('abort', () => void stopOnSignal(), { once: true });

  const code = await Promise.race([exited, vmDied, agentGone, gaveUp]);
  c.state = withStatus({ ...c.state, exitCode: code }, 'stopped', `exit code ${code}`);
  await c.store.update(c.state).catch(() => {});
  // The agent ends both channels before it reports the exit; wait briefly for the bytes.
  await Promise.race([drained, deadline(2000)]);
  if (signalled) return exitCodeForSignal(signalled);
  return code;
}
