import { randomBytes } from 'node:crypto';
import { mkdir, realpath, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { applyHealthOverride } from '../protocol/healthcheck.js';
import { publishAll } from '../net/publish.js';
import { planImage } from '../images/host-image.js';
import { METHODS } from '../protocol/api.js';
import { Connection } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { requireManifest, type Manifest } from '../setup/manifest.js';
import { preflight, RUN_CHECKS } from '../setup/preflight.js';
import { setup } from '../setup/setup.js';
import { reapLeftovers } from '../state/reaper.js';
import { STATE_SCHEMA, type VmState } from '../state/vm-state.js';
import { deadline, processStartTime } from '../util/proc.js';
import { runBeside, type Step } from '../util/steps.js';
import { resolveAccel } from '../vmm/accel.js';
import { vcpuCount } from '../vmm/nested.js';
import { consoleTail } from '../vmm/console.js';
import type { Accel } from '../vmm/driver.js';
import { loopbackFor, MAX_NET_INDEX } from '../net/addressing.js';
import { releaseHostIndex, reserveHostIndex } from '../net/host-index.js';
import { assertPortsFree, assignHostPorts, portInUse, publishedByOther } from '../net/ports.js';
import { withFileLock } from '../util/file-lock.js';
import { isOwnerAlive } from '../state/store.js';
import { guestCmdline } from '../vmm/qemu/command.js';
import { hostTscKhz } from '../vmm/host-tsc.js';
import { startControlServer } from './control-server.js';
import { selectDriver } from './select-driver.js';
import { describeExit, IMAGE_DISK, interrupted, ROOT_DISK, vmmDir, vmStoppedError, type Ctx } from './run-context.js';
import { connectNetwork, prepareNetwork } from './network-step.js';
import { resyncingTransport } from '../protocol/session-sync.js';
import { ProtocolError } from '../protocol/codec.js';
import { createSnapshot } from '../snapshot/create.js';
import { startManageServer } from './manage-server.js';
import { claimJail, prepareJail } from './jail-step.js';
import { ensureReflinkFs } from '../disks/reflink-fs.js';
import { requireRawBaseDisk } from '../disks/base-disk.js';
import { runRecord } from './plan-record.js';
import { openVmLog } from './log-step.js';
import { volumesStep } from './volumes-step.js';
import { profileKernelArgs } from '../setup/kernel-profile.js';
import { withNestedVolumes } from '../options/nested-volumes.js';
import { packageRoot } from '../util/package-root.js';

/** The boot of a cold VM, as named steps. */
export const preflightStep: Step<Ctx> = { name: 'preflight', run: () => preflight(RUN_CHECKS) };
export const reapStep: Step<Ctx> = { name: 'reap', run: async (c) => void (await reapLeftovers(c.env.layout, c.env.log)) };
export const driverStep: Step<Ctx> = { name: 'driver', run: async (c) => (c.driver = await selectDriver(c.opts.hypervisor, c.env.log, c.env.layout)) };

/** A nested-profile VM also gets fcvm and its artifacts (options/nested-volumes.ts). */
const nestedVolumesStep: Step<Ctx> = {
  name: 'nested-volumes',
  run: async (c) => {
    if (c.opts.kernelProfile !== 'nested') return;
    const [root, artifacts] = await Promise.all([realpath(packageRoot()), realpath(c.env.layout.artifacts)]);
    c.opts = { ...c.opts, volumes: withNestedVolumes(c.opts.volumes, { packageRoot: root, artifacts }) };
  },
};

export const coldBootSteps: readonly Step<Ctx>[] = runBeside([
  preflightStep,
  reapStep,
  { name: 'artifacts', run: async (c) => (c.manifest = await ensureArtifacts(c)) },
  driverStep,
  {
    name: 'image',
    run: async (c) => {
      const plan = await planImage(c.opts.image, c.env.layout.imageCache, c.opts.pull, (l) => c.env.out.write(`${l}\n`));
      // podman's --health-* flags over the image's HEALTHCHECK (a pulled image's is read in the guest).
      c.image = { ...plan, healthcheck: applyHealthOverride(plan.healthcheck, c.opts.health) };
      if (c.opts.publishAll) {
        // A pulled image's EXPOSE is known only in the guest, after the ports are claimed.
        if (plan.kind === 'pull') c.env.out.write(`fcvm: -P publishes only --expose ports for ${plan.ref}: its own EXPOSE is known once the guest has pulled it. Publish them with -p, or "podman pull" it on the host first\n`);
        const exposed = [...(plan.kind === 'archive' ? plan.exposed ?? [] : []), ...(c.opts.expose ?? [])];
        c.opts = { ...c.opts, publish: publishAll(c.opts.publish, exposed) };
      }
    },
  },
  nestedVolumesStep,
  { name: 'accel', run: pickAccel },
  { name: 'claim-name', run: claimName },
  { name: 'log', run: openVmLog },
  { name: 'network', run: prepareNetwork },
  // Beside the disks, the boot and the agent; joined (network-ready) before the guest is configured.
  { name: 'network-connect', run: connectNetwork },
  { name: 'disks', run: prepareDisks },
  { name: 'jail', run: prepareJail },
  { name: 'boot', run: boot },
  { name: 'agent', run: connectAgent },
  volumesStep,
  // Not awaited here: the agent handles requests in order, so the container's run request
  // goes out right behind it and the configure result is checked before the container runs.
  {
    name: 'configure',
    run: (c) => {
      c.configured = c.conn.request(METHODS.configure, { hostname: c.opts.hostname ?? c.opts.name, clockMs: Date.now(), ...(c.guestNet ? { network: c.guestNet } : {}) });
      c.configured.catch(() => {});
    },
  },
  { name: 'control-socket', run: openControlSocket },
], 'network-connect', 'configure', 'network-ready', logBeside);

/** The step log's line for a step that ran beside others. */
export function logBeside(c: Ctx, ms: number): void {
  c.env.log.debug({ step: 'network-connect', ms }, 'step network-connect done (beside)');
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
export async function claimName(c: Ctx): Promise<void> {
  await assertPortsFree(c.opts.publish);
  await withFileLock(join(c.env.layout.locks, 'alloc.lock'), () => claimLocked(c));
}

async function claimLocked(c: Ctx): Promise<void> {
  // `snapshots delete` holds this lock too: a clone's snapshot is either still there or refused.
  if (c.clone && !(await stat(c.clone.dir).then(() => true, () => false))) throw errors.snapshotNotFound(c.clone.tag);
  const live = (await c.store.list()).flatMap((e) => (e.ok && isOwnerAlive(e.state) ? [e.state] : []));
  // -p GUESTPORT: a free host port, picked under the lock (the state written below keeps it).
  if (c.opts.publish.some((m) => m.hostPort === 0)) {
    c.opts = { ...c.opts, publish: await assignHostPorts(c.opts.publish, live.filter((s) => s.name !== c.opts.name).flatMap((s) => s.network.publish)) };
  }
  const clash = publishedByOther(live, c.opts.name, c.opts.publish);
  if (clash) throw portInUse(clash.mapping, `published by VM "${clash.by}"`);
  warnSharedVolumes(c, live);
  const used = new Set(live.map((s) => s.netIndex));
  const pid = process.pid;
  const start = processStartTime(pid)!;
  // Free here, and not taken by a VM of another base directory on this host.
  let netIndex = 0;
  while (used.has(netIndex) || !reserveHostIndex(netIndex, pid, start)) netIndex++;
  if (netIndex > MAX_NET_INDEX) throw errors.preflight('network addresses', `all ${MAX_NET_INDEX + 1} are in use`, 'Stop some VMs');
  const index = netIndex;
  c.cleanup.push('release the network index', () => releaseHostIndex(index, pid, start));
  // A pooled clone claimed its jail with its run directory, and its VMM runs in it already.
  const jail = c.reservedRunDir ? c.state.jail! : await claimJail(c);
  // The run directory carries the owner's identity, so a reaper can tell it is orphaned.
  // A pooled clone made its run directory (named the same way) before it had a name.
  const runDir = c.reservedRunDir ?? join(c.env.layout.vmRuntime, `${randomBytes(3).toString('hex')}-${pid}-${start}`);
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
    ...(c.opts.volumes.length > 0 ? { volumes: c.opts.volumes } : {}),
    ...(c.clone && !c.clone.startup ? { clone: { tag: c.clone.tag, ...(c.clone.servePid ? { servePid: c.clone.servePid } : {}) } } : {}),
    ...(c.clone?.startup ? { startupSnapshot: c.clone.tag } : {}),
    jail,
    ...runRecord(c.opts, c.env.layout, runDir.slice(runDir.lastIndexOf('/') + 1), c.env.keepEnded),
  };
  const owner = await c.store.claim(state);
  if (owner) throw errors.nameInUse(c.opts.name, owner.pid);
  c.cleanup.push('remove state file', () => c.store.remove(state.name));
  c.state = state;
}

/**
 * A clone keeps its source's volumes unless --map points them elsewhere, so a clone of
 * a running database shares its data directory read-write without anyone asking for it
 * (and two database servers on one directory lose writes). Says so in one line, naming
 * the VMs and the --map that gives the clone a directory of its own.
 */
function warnSharedVolumes(c: Ctx, live: readonly VmState[]): void {
  if (!c.clone || c.clone.startup) return;
  const inherited = c.opts.volumes.filter((v) => !v.readOnly && c.clone!.meta.volumes?.mappings.some((m) => m.guest === v.guest && m.host === v.host));
  for (const v of inherited) {
    const others = live.filter((s) => s.name !== c.opts.name && s.volumes?.some((o) => o.host === v.host && !o.readOnly)).map((s) => s.name);
    if (others.length === 0) continue;
    c.env.out.write(`fcvm: warning: clone "${c.opts.name}" writes to ${v.host} (${v.guest}), as running VM${others.length > 1 ? 's' : ''} ${others.map((n) => `"${n}"`).join(', ')} do${others.length > 1 ? '' : 'es'}; give it a directory of its own with --map COPY:${v.guest}, or :ro\n`);
  }
}

/** The accelerator, and with it the default vCPU count of a nested-profile VM (before the state records it). */
async function pickAccel(c: Ctx): Promise<void> {
  // A driver without emulation (Firecracker) runs under KVM or not at all.
  c.accel = c.driver.capabilities.tcg ? await resolveAccel(c.opts.accel, c.manifest, c.env.layout.accelCache, c.env.log) : 'kvm';
  c.opts = { ...c.opts, vcpus: vcpuCount(c.opts, c.accel) };
}

async function prepareDisks(c: Ctx): Promise<void> {
  const runDir = vmmDir(c.state.runDir);
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  c.cleanup.push('remove run directory', () => rm(c.state.runDir, { recursive: true, force: true }));
  // The root disk is a copy-on-write child of the shared base (the driver makes it: a
  // qcow2 overlay, or a reflink on the disk root for a driver that takes raw disks only).
  const raw = !c.driver.capabilities.diskFormats.includes('qcow2');
  const profile = profileArtifacts(c);
  const rootBase = raw ? await requireRawBaseDisk(c.env.layout, c.manifest) : profile.rootfs;
  const diskDir = raw ? await makeDiskDir(c) : undefined;
  c.spec = {
    name: c.opts.name,
    id: c.state.id,
    runDir,
    kernel: kernelFor(c),
    initrd: profile.initrd,
    cmdline: guestCmdline([...profileKernelArgs(c.opts.kernelProfile), ...guestKernelArgs(c.accel)]),
    vcpus: c.opts.vcpus,
    memoryMiB: c.opts.memoryMiB,
    accel: c.accel,
    disks: [
      { id: ROOT_DISK, path: rootBase, format: 'raw', readOnly: false, cow: true },
      ...(c.image.kind === 'archive' ? [{ id: IMAGE_DISK, path: c.image.disk, format: 'raw' as const, readOnly: true }] : []),
    ],
    nics: c.nics ?? [],
    ...(c.netns ? { netns: c.netns } : {}),
    ...(c.userNamespaceOf ? { userNamespaceOf: c.userNamespaceOf } : {}),
    ...(diskDir ? { diskDir } : {}),
    ...(c.opts.kernelProfile === 'nested' ? { nested: true } : {}),
  };
}

/** The kernel image the driver boots: the user's own (--kernel), or setup's. */
function kernelFor(c: Ctx): string {
  if (c.opts.kernel) return c.opts.kernel;
  if (c.driver.capabilities.kernel === 'bzImage') return c.manifest.kernel.path;
  if (!c.manifest.vmlinux) throw errors.setupMissing(c.env.layout.base, 'the ELF kernel for Firecracker');
  return c.manifest.vmlinux.path;
}

/**
 * The VM's directory on the disk root, for its raw copy-on-write disks (and the VMM's
 * own files), named by the VM id so a reaper can tell when its owner is gone.
 */
export async function makeDiskDir(c: Ctx): Promise<string> {
  await ensureReflinkFs(c.env.layout);
  const dir = join(c.env.layout.vmmDirs, c.state.id);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  c.cleanup.push('remove the disk directory', () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Extra kernel arguments: under TCG, the TSC rate, so a busy host cannot hang
 * calibration; then FCVM_KERNEL_ARGS, for debugging.
 */
export function guestKernelArgs(accel: Accel, env: NodeJS.ProcessEnv = process.env): string[] {
  const khz = accel === 'tcg' ? hostTscKhz() : undefined;
  // tsc=reliable: microvm has no HPET or ACPI PM timer to check the TSC against, so the
  // guest would fall back to refined-jiffies, which cannot go tickless: every idle vCPU
  // then takes HZ interrupts a second, about 7% of a host core per idle VM under TCG
  // (TCG's TSC is the host's invariant TSC, the same on every vCPU).
  return [...(khz ? [`tsc_early_khz=${khz}`, 'tsc=reliable'] : []), ...(env.FCVM_KERNEL_ARGS?.split(/\s+/).filter(Boolean) ?? [])];
}

/** The initrd and root filesystem of the VM's kernel profile. */
function profileArtifacts(c: Ctx): { initrd: string; rootfs: string } {
  if (c.opts.kernelProfile === 'default') return { initrd: c.manifest.initrd.path, rootfs: c.manifest.rootfs.path };
  if (!c.manifest.nested) throw errors.setupMissing(c.env.layout.base, 'the nested kernel profile; run "fcvm setup --kernel-profile nested"');
  return { initrd: c.manifest.nested.initrd.path, rootfs: c.manifest.nested.rootfs.path };
}

async function boot(c: Ctx): Promise<void> {
  c.vm = await c.driver.boot(c.spec, c.cleanup);
  c.state = { ...c.state, vmmPid: c.vm.pid, accel: c.accel, ...(c.vm.kvm ? { kvm: c.vm.kvm } : {}) };
  await c.store.update(c.state);
}

export async function connectAgent(c: Ctx): Promise<void> {
  // A clone's agent is mid-way through its source's session: start a new one at SYNC.
  const agent = await c.vm.connectChannel('agent');
  const transport = c.clone ? resyncingTransport(agent) : agent;
  const conn = new Connection(transport, { role: 'host', features: FEATURES });
  c.cleanup.push('close agent connection', () => conn.close());
  // The one request an agent may make: the host's clock, which it sets the guest's to.
  conn.onRequest(async (method) => {
    if (method !== METHODS.hostClock) throw Object.assign(new Error(`the host serves no "${method}"`), { code: 'UNSUPPORTED' });
    return { clockMs: Date.now() };
  });
  c.conn = conn;
  c.hello = helloOrWhyNot(c, conn);
  c.hello.catch(() => {});
  // A clone waits for its hello in vm.restored's step; a cold VM waits here.
  if (!c.clone) await c.hello;
}

/** The agent's hello, or an error that says why it did not come. */
async function helloOrWhyNot(c: Ctx, conn: Connection): Promise<void> {
  const timeoutMs = c.opts.bootTimeoutSeconds * 1000;
  const died = c.vm.exited.then(async (x) => {
    throw await vmStoppedError(c, `VMM exited with ${describeExit(x)} before the agent answered`, x);
  });
  died.catch(() => {});
  try {
    await Promise.race([conn.handshake(timeoutMs), died, interrupted(c.env.interrupt)]);
  } catch (e) {
    throw await agentFailure(c, e, { awaited: 'the guest agent\'s hello', before: 'its agent answered' });
  }
}

/**
 * What to report when the agent did not answer: a guest that powered off (its socket
 * closes before QEMU's exit is seen, so that is waited for briefly), a timeout with the
 * console's key lines, or a broken protocol.
 */
export async function agentFailure(c: Ctx, e: unknown, what: { awaited: string; before: string }): Promise<Error> {
  if (isFcvmError(e)) return e;
  const exit = await Promise.race([c.vm.exited, deadline(1000).then(() => undefined)]);
  if (exit) return vmStoppedError(c, `the guest stopped before ${what.before} (VMM ${exit.signal ?? `exit code ${exit.code}`})`, exit);
  const broken = c.conn?.closeReason;
  if (broken instanceof ProtocolError) return errors.protocol(broken.message);
  const partial = c.conn?.partialFrameBytes ?? 0;
  if ((e as Error).name === 'TimeoutError' && partial > 0) return errors.protocol(`it sent ${partial} bytes of a frame and never the rest`);
  if ((e as Error).name === 'TimeoutError') return errors.agentTimeout(what.awaited, c.opts.bootTimeoutSeconds, await consoleTail(c.vm.consoleLog));
  return errors.protocol((e as Error).message);
}

export async function openControlSocket(c: Ctx): Promise<void> {
  const server = await startControlServer(c.state.runDir, c.conn, c.env.log);
  c.cleanup.push('close control socket', () => server.close());
  const manage = await startManageServer(c.state.runDir, {
    snapshot: async (tag, opts) => {
      const meta = await createSnapshot(c, tag, opts);
      return { tag: meta.tag, pausedMs: meta.pausedMs, memoryBytes: meta.files.memory?.size ?? 0, files: meta.files };
    },
    // `fcvm stop`: what SIGTERM does, with its own grace period if it gave one.
    stop: async (graceSeconds) => {
      if (graceSeconds !== undefined) c.opts = { ...c.opts, stopGraceSeconds: graceSeconds };
      c.vmLog?.write('fcvm: "fcvm stop" asked the VM to stop\n');
      c.stopCommand = true;
      c.env.stop?.('SIGTERM');
      return {};
    },
    wait: async () => ({ exitCode: await c.containerExit.promise }),
    kill: async (signal) => c.conn.request(METHODS.kill, { signal }, 10_000).then(() => ({})),
  }, c.env.log);
  c.cleanup.push('close management socket', () => manage.close());
}
