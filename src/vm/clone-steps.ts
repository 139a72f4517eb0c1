import { randomBytes } from 'node:crypto';
import { closeSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import { METHODS, RestoredResultSchema } from '../protocol/api.js';
import { RemoteError } from '../protocol/connection.js';
import { ProtocolError } from '../protocol/codec.js';
import { attachToServer, type ServerLink } from '../snapshot/serve-client.js';
import { loadSnapshot, SNAPSHOT_FILES, verifySnapshot } from '../snapshot/store.js';
import { replaceStep, type Step } from '../util/steps.js';
import { agentFailure, coldBootSteps, makeDiskDir } from './boot-steps.js';
import type { MemorySource } from '../vmm/driver.js';
import { reapLeftovers } from '../state/reaper.js';
import { IMAGE_DISK, ROOT_DISK, vmmDir, type Ctx } from './run-context.js';
import { cloneRunOptions, type CloneFlags } from '../options/clone-options.js';

/**
 * A clone's start: the cold boot's steps, with the image, disks, boot and configure
 * steps replaced by restoring the snapshot. Named like the cold steps they stand for,
 * so FCVM_LOG=debug timings compare one to one.
 */
export function cloneSteps(flags: CloneFlags): readonly Step<Ctx>[] {
  let steps = [...coldBootSteps];
  // What dead processes left is no obstacle to a clone (names, addresses and files are
  // claimed by live owners only), so the reaping runs beside its start.
  steps = replaceStep(steps, 'reap', {
    name: 'reap',
    run: (c) => {
      const reaping = reapLeftovers(c.env.layout, c.env.log).catch((e) => c.env.log.debug({ err: e }, 'reaping failed'));
      c.cleanup.push('finish reaping', () => reaping);
    },
  });
  steps = replaceStep(steps, 'artifacts', { name: 'snapshot', run: (c) => openSnapshot(c, flags) });
  steps = replaceStep(steps, 'image', null);
  steps = replaceStep(steps, 'accel', null);
  steps = replaceStep(steps, 'disks', { name: 'disks', run: prepareCloneDisks });
  steps = replaceStep(steps, 'boot', { name: 'restore', run: restore });
  steps = replaceStep(steps, 'configure', { name: 'restored', run: restored });
  return steps;
}

/**
 * Finds the snapshot (through its memory server, or by tag), checks it, and turns its
 * run plan plus the clone's own flags into the run options.
 */
export async function openSnapshot(c: Ctx, flags: CloneFlags): Promise<void> {
  let tag: string;
  let servePid: number | undefined;
  let sealedFd: number | undefined;
  let server: ServerLink | undefined;
  if (flags.source.kind === 'serve') {
    const link = await attachToServer(c.env.layout, flags.source.pid, c.opts.name, c.env.log);
    // The server going away ends the clone, like a SIGTERM (unless the clone is ending anyway).
    let detaching = false;
    void link.closed.then(() => detaching || c.env.stop?.('SIGTERM'));
    c.cleanup.push('detach from the memory server', () => {
      detaching = true;
      link.close();
    });
    if (link.sealedFd !== undefined) {
      const fd = link.sealedFd;
      sealedFd = fd;
      c.cleanup.push('close the server\'s sealed memory', () => closeSync(fd));
    }
    tag = link.tag;
    servePid = flags.source.pid;
    server = link;
  } else tag = flags.source.tag;
  const { dir, meta } = await loadSnapshot(c.env.layout, tag);
  if (meta.startup) {
    throw errors.invalidOption(flags.source.kind === 'serve' ? '--pid' : '--snapshot', flags.source.kind === 'serve' ? String(flags.source.pid) : tag,
      `snapshot "${tag}" is a startup snapshot of "podman run" and holds no container to clone`, `Run "fcvm podman run ${meta.plan.image} ...", which restores it`);
  }
  // A server checked every byte when it started; without one, files unchanged since
  // their last full check are trusted (see verifySnapshot).
  await verifySnapshot(dir, meta, { trustStamp: true });
  // The frozen disk's backing file is the root filesystem artifact it was made on.
  if (!(await stat(meta.machine.rootfs).then(() => true, () => false))) {
    throw errors.snapshotCorrupt(tag, `its base file ${meta.machine.rootfs} is gone (was "fcvm setup --force" run?)`);
  }
  c.clone = { tag, dir, meta, servePid, server, sealedFd };
  c.opts = cloneRunOptions(meta, flags);
  c.accel = meta.machine.accel;
  c.image = meta.plan.imageId
    ? { kind: 'archive', ref: meta.plan.image, id: meta.plan.imageId, disk: join(dir, SNAPSHOT_FILES.image), healthcheck: meta.plan.healthcheck }
    : { kind: 'pull', ref: meta.plan.image, healthcheck: undefined };
}

/**
 * A clone's translation cache under TCG. Ten clones with QEMU's default (up to 1 GiB
 * each) could hold far more than their guests; the buffer costs only what is
 * translated. A clone's restore and first exec translate about 50 MiB: at 32 MiB QEMU
 * flushed the cache midway and translated again (a clone to its first exec took
 * 1312 ms against 1135 at 128 MiB, median of 5 side by side).
 */
const CLONE_TCG_CACHE_MIB = 128;

/** The clone's disk is a throwaway copy-on-write child of the snapshot's frozen one. */
export async function prepareCloneDisks(c: Ctx): Promise<void> {
  const { dir, meta } = c.clone!;
  const runDir = vmmDir(c.state.runDir);
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  c.cleanup.push('remove run directory', () => rm(c.state.runDir, { recursive: true, force: true }));
  const m = meta.machine;
  const diskDir = c.driver.capabilities.diskFormats.includes('qcow2') ? undefined : await makeDiskDir(c);
  c.spec = {
    name: c.opts.name,
    id: c.state.id,
    runDir,
    kernel: m.kernelFile ? join(dir, m.kernelFile) : m.kernel,
    cmdline: m.cmdline,
    // A startup snapshot's run runs a whole new container, with a cold VM's translation cache.
    ...(c.clone!.startup ? {} : { tcgCacheMiB: CLONE_TCG_CACHE_MIB }),
    vcpus: m.vcpus,
    memoryMiB: m.memoryMiB,
    accel: m.accel,
    disks: [
      { id: ROOT_DISK, path: join(dir, m.rootDisk.file), format: m.rootDisk.format, readOnly: false, cow: true },
      ...(m.hasImageDisk ? [{ id: IMAGE_DISK, path: join(dir, SNAPSHOT_FILES.image), format: 'raw' as const, readOnly: true }] : []),
    ],
    nics: c.nics ?? [],
    ...(c.netns ? { netns: c.netns } : {}),
    ...(c.userNamespaceOf ? { userNamespaceOf: c.userNamespaceOf } : {}),
    ...(diskDir ? { diskDir } : {}),
    ...(m.nested ? { nested: true } : {}),
  };
}

/**
 * Memory comes from the memory server by userfaultfd where both it and the driver can
 * (Firecracker), else from the snapshot's file, mapped privately.
 */
function memorySource(c: Ctx): MemorySource {
  const server = c.clone!.server;
  if (server?.uffd && c.driver.capabilities.restoreMemory.includes('uffd')) {
    return { kind: 'uffd', serve: (socketPath, peerUid) => server.serveUffd(socketPath, peerUid) };
  }
  // A run from a startup snapshot is a cold run's equal: its RAM is its own (and can be snapshotted).
  if (c.clone!.startup) return { kind: 'file', path: join(c.clone!.dir, SNAPSHOT_FILES.memory), copy: true };
  const sealedFd = c.clone!.sealedFd;
  return { kind: 'file', path: join(c.clone!.dir, SNAPSHOT_FILES.memory), ...(sealedFd !== undefined ? { sealedFd } : {}) };
}

export async function restore(c: Ctx): Promise<void> {
  await restoreVm(c);
  c.state = { ...c.state, vmmPid: c.vm.pid, accel: c.accel, ...(c.vm.kvm ? { kvm: c.vm.kvm } : {}) };
  await c.store.update(c.state);
}

/** Starts the VMM from the snapshot (a pooled clone does this before it has a state file). */
export async function restoreVm(c: Ctx): Promise<void> {
  const { dir, meta } = c.clone!;
  c.vm = await c.driver.restore(c.spec, {
    state: join(dir, SNAPSHOT_FILES.state),
    memory: memorySource(c),
    ...(meta.machine.kernelFile ? { kernel: join(dir, meta.machine.kernelFile) } : {}),
  }, c.cleanup);
}

/** Events a clone's agent may send before its supervision listens. */
const MAX_EARLY_EVENTS = 256;

/** Tells the agent it was restored: clock, randomness, and its network if it changed. */
export async function restored(c: Ctx): Promise<void> {
  const before = c.clone!.meta.machine.guestNet;
  const now = c.guestNet;
  const moved = JSON.stringify(before ?? null) !== JSON.stringify(now ?? null);
  // From its new session on, the agent sends the container's events here: keep them
  // until the supervision listens.
  const events: [string, unknown][] = [];
  c.earlyEvents = {
    events,
    stop: c.conn.onEvent((name, data) => {
      // A guest that floods events before its restore completes must not grow memory.
      if (events.length < MAX_EARLY_EVENTS) events.push([name, data]);
      else c.conn.close(new ProtocolError(`more than ${MAX_EARLY_EVENTS} events before the restore completed`));
    }),
  };
  // Sent once the agent said hello, not right behind the connect: the clock it sets is
  // then the host's of a moment ago, not of before the guest's resync (about 200 ms).
  await c.hello;
  const request = c.conn.request(METHODS.restored, {
    hostname: c.opts.hostname ?? c.opts.name,
    clockMs: Date.now(),
    entropy: randomBytes(64).toString('base64'),
    ...(moved && now ? { network: now } : {}),
  }, c.opts.bootTimeoutSeconds * 1000);
  try {
    const parsed = RestoredResultSchema.safeParse(await request);
    if (!parsed.success) throw errors.protocol('the agent\'s answer to vm.restored is malformed');
    c.restored = parsed.data;
  } catch (e) {
    if (e instanceof RemoteError) throw errors.agent(METHODS.restored, e.code, e.message);
    throw await agentFailure(c, e, { awaited: 'the restored agent\'s answer', before: 'its restored agent answered' });
  }
  // The container's output channels are the source's: claim them now, so no session
  // opened later (an exec's) can get their ids; their bytes wait for the supervision.
  for (const id of [c.restored.stdoutChannel, c.restored.stderrChannel]) if (id !== undefined) c.conn.adoptChannel(id);
  c.configured = Promise.resolve();
}
