import { copyFile, link, mkdir, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errors, messageOf } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { machineFault } from '../errors/os-fault.js';
import { macFor } from '../net/addressing.js';
import { MemoryTrimResultSchema, METHODS } from '../protocol/api.js';
import { FEATURE_MEMORY_TRIM } from '../protocol/messages.js';
import { removeTree } from '../util/remove-tree.js';
import { failpoint } from '../util/failpoint.js';
import type { Ctx } from '../vm/run-context.js';
import { ROOT_DISK } from '../vm/run-context.js';
import { commitSnapshot, partialSnapshotDir, sha256File, snapshotDir, SNAPSHOT_FILES, SNAPSHOT_SCHEMA, stampSnapshot, type SnapshotMeta } from './store.js';
import type { SnapshotInProgress } from '../vmm/driver.js';
import type { VolumeTable } from '../fuse/table-snapshot.js';
import { awaitReports } from './trim.js';

/** Only one snapshot of a VM at a time. */
const busy = new WeakSet<Ctx>();

/** What makes a snapshot a startup snapshot (a cache entry of `podman run`). */
export interface StartupMark {
  key: string;
  fcvm: string;
}

/**
 * Takes a snapshot of the supervisor's own VM: the agent is told first (so a clone
 * can start a new session), then the VM pauses just long enough to save device state,
 * copy RAM and freeze the disk, and goes on. Checksums and meta.json follow, and the
 * snapshot appears under its tag only when complete.
 */
export async function createSnapshot(c: Ctx, tag: string, opts: SnapshotOptions = {}): Promise<SnapshotMeta> {
  return (await captureSnapshot(c, tag, undefined, opts))();
}

export interface SnapshotOptions {
  /**
   * Before the pause, the guest drops its clean caches and its free pages leave the RAM
   * file (trim.ts), so the snapshot keeps only memory in use (default: where the VMM
   * can drop them). A startup snapshot never trims: every hit would read its caches again.
   */
  trim?: boolean;
  /** Aborted when whoever asked for the snapshot is gone (Ctrl-C): it is not finished then. */
  signal?: AbortSignal;
}

/**
 * The part of a snapshot the VM waits for (it is paused, then resumes); resolves with
 * the rest, which makes the snapshot complete and visible under its tag and may run
 * while the VM goes on. A startup snapshot is taken before the container runs: its
 * meta holds no container plan and no guest network (the guest has none yet).
 */
export async function captureSnapshot(c: Ctx, tag: string, startup?: StartupMark, opts: SnapshotOptions = {}): Promise<() => Promise<SnapshotMeta>> {
  const { layout, log } = c.env;
  const name = c.opts.name;
  if (!c.driver.capabilities.snapshot) throw errors.snapshotRefused(name, `hypervisor ${c.driver.name} cannot take snapshots`);
  // A run from a startup snapshot has RAM of its own, as a cold VM has.
  if (c.clone && !c.clone.startup && !c.driver.capabilities.snapshotRestored) throw errors.snapshotRefused(name, `it is a clone, and ${c.driver.name} keeps a clone's RAM as a private copy of its snapshot; snapshot its source instead`);
  if (!startup && !['running', 'healthy', 'unhealthy'].includes(c.state.status)) throw errors.snapshotRefused(name, `it is ${c.state.status}, not running`);
  if (await stat(snapshotDir(layout, tag)).then(() => true, () => false)) throw errors.snapshotExists(tag);
  if (busy.has(c)) throw errors.snapshotRefused(name, 'another snapshot of it is being taken', 'Wait for that one to finish, then try again');
  busy.add(c);
  const partial = partialSnapshotDir(layout, tag);
  const failed = async (e: unknown): Promise<never> => {
    busy.delete(c);
    await removeTree(partial).catch(() => {});
    throw machineFault(e, `taking snapshot "${tag}"`, layout.snapshots) ?? (isFcvmError(e) ? e : errors.snapshotRefused(name, messageOf(e)));
  };
  let taken;
  let pausedMs;
  let volumeTables;
  try {
    await mkdir(layout.snapshots, { recursive: true });
    await mkdir(partial, { mode: 0o700 });
    try {
      if (!startup && opts.trim !== false) {
        await trimGuest(c);
        failpoint('snapshot:trimmed');
        // The trim took seconds: the VM may have stopped meanwhile.
        if (!['running', 'healthy', 'unhealthy'].includes(c.state.status)) throw errors.snapshotRefused(name, `it is ${c.state.status}, not running`);
      }
      opts.signal?.throwIfAborted();
      await fitsOrRefuse(c, tag);
      await c.conn.request(METHODS.snapshotPrepare, {}, 10_000);
      failpoint('snapshot:prepared');
      const t0 = performance.now();
      await c.vm.pause();
      failpoint('snapshot:paused');
      // The tables as the paused guest knows them (its in-flight requests are re-sent to a clone).
      volumeTables = c.volumes?.snapshot();
      try {
        taken = await c.vm.snapshot(partial);
        failpoint('snapshot:saved');
      } catch (e) {
        // A copy that filled the disk gives its space back before the guest runs again.
        await removeTree(partial).catch(() => {});
        throw e;
      } finally {
        await c.vm.resume();
      }
      failpoint('snapshot:resumed');
      pausedMs = Math.round(performance.now() - t0);
      log.debug({ pausedMs }, 'snapshot: source resumed');
    } finally {
      // Whatever happened, the source must not stay armed for a session that never comes.
      await c.conn.request(METHODS.snapshotDone, { clockMs: Date.now() }, 10_000).catch((e) => log.warn({ err: e }, 'snapshot: the agent did not confirm'));
    }
  } catch (e) {
    return failed(e);
  }
  return async () => {
    try {
      opts.signal?.throwIfAborted();
      return await completeSnapshot(c, tag, partial, taken, pausedMs, volumeTables, startup, opts.signal);
    } catch (e) {
      return failed(e);
    } finally {
      busy.delete(c);
    }
  };
}

/** Free space a snapshot leaves on its filesystem, for the VMs whose disks grow there. */
const SNAPSHOT_HEADROOM_BYTES = 64 * 2 ** 20;

/**
 * Refuses, before the VM pauses, a snapshot that would not fit with room to spare: a copy
 * that fills the disk fails anyway, and meanwhile every VM whose disk is there (this one
 * too) fails its writes.
 */
async function fitsOrRefuse(c: Ctx, tag: string): Promise<void> {
  const where = c.env.layout.snapshots;
  const [needs, fs] = await Promise.all([c.vm.snapshotBytes(), statfs(where)]);
  const free = fs.bavail * fs.bsize;
  if (free >= needs + SNAPSHOT_HEADROOM_BYTES) return;
  const mib = (n: number) => Math.ceil(n / 2 ** 20);
  throw errors.diskFull(`taking snapshot "${tag}"`, where, undefined,
    `It needs about ${mib(needs)} MiB and ${mib(free)} MiB are free (fcvm leaves ${mib(SNAPSHOT_HEADROOM_BYTES)} MiB for the VMs' disks). Free some space there, or point --base-dir at a larger filesystem, and try again`);
}

/**
 * Asks the guest to trim its memory and waits while the VMM drops the pages it reports
 * free. A guest that does not (an old agent, a hostile one, no balloon) is snapshotted
 * as it is: the snapshot is then only larger.
 */
async function trimGuest(c: Ctx): Promise<void> {
  const held = c.vm.memoryHeld;
  if (!held || !c.conn.features.includes(FEATURE_MEMORY_TRIM)) return;
  const asked = await held();
  try {
    const r = MemoryTrimResultSchema.parse(await c.conn.request(METHODS.memoryTrim, {}, 30_000));
    if (!r.reporting) return;
  } catch (e) {
    c.env.log.warn({ err: e }, 'snapshot: the guest did not trim its memory; the snapshot keeps all of it');
    return;
  }
  // From the level after the guest's sync: pages it touched meanwhile are not a report.
  const t = await awaitReports(held, await held());
  c.env.log.debug({ askedMiB: mib(asked), syncedMiB: mib(t.before), afterMiB: mib(t.after), ms: t.ms }, 'snapshot: the guest trimmed its memory');
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

/** Makes the captured files self-contained, checks them in, and commits the snapshot under its tag. */
async function completeSnapshot(c: Ctx, tag: string, partial: string, taken: SnapshotInProgress, pausedMs: number, volumeTables: VolumeTable[] | undefined, startup: StartupMark | undefined, signal: AbortSignal | undefined): Promise<SnapshotMeta> {
  await taken.complete();
  const root = taken.files.disks.find((d) => d.id === ROOT_DISK);
  const inside = (p: string | undefined) => p !== undefined && dirname(p) === partial;
  if (!root || !inside(root.path)) throw new Error('the driver did not freeze the root disk');
  if (!inside(taken.files.state) || !inside(taken.files.memory) || (taken.files.kernel && !inside(taken.files.kernel))) throw new Error('the driver wrote snapshot files outside the snapshot');
  if (c.image.kind === 'archive') await linkOrCopy(c.image.disk, join(partial, SNAPSHOT_FILES.image));
  const names = [taken.files.state, taken.files.memory, root.path, ...(taken.files.kernel ? [taken.files.kernel] : [])].map((p) => basename(p));
  if (c.image.kind === 'archive') names.push(SNAPSHOT_FILES.image);
  const files: SnapshotMeta['files'] = {};
  for (const f of names) files[f] = await sha256File(join(partial, f));
  const nic = c.spec.nics[0];
  const meta: SnapshotMeta = {
    schema: SNAPSHOT_SCHEMA,
    tag,
    createdAt: new Date().toISOString(),
    pausedMs,
    source: { name: c.opts.name, id: c.state.id },
    plan: {
      image: c.opts.image,
      ...(c.image.kind === 'archive' ? { imageId: c.image.id } : {}),
      ...(c.image.healthcheck ? { healthcheck: c.image.healthcheck } : {}),
      ...(c.opts.command && !startup ? { command: c.opts.command } : {}),
      env: startup ? {} : c.opts.env,
      privileged: startup ? false : c.opts.privileged,
      network: { mode: c.opts.network, publish: startup ? [] : c.opts.publish },
    },
    machine: {
      hypervisor: c.driver.name,
      accel: c.accel,
      kernel: c.spec.kernel,
      initrd: c.spec.initrd ?? c.manifest.initrd.path,
      cmdline: c.spec.cmdline,
      vcpus: c.spec.vcpus,
      memoryMiB: c.spec.memoryMiB,
      rootfs: c.opts.kernelProfile === 'nested' && c.manifest.nested ? c.manifest.nested.rootfs.path : c.manifest.rootfs.path,
      ...(c.spec.nested ? { nested: true } : {}),
      mac: nic?.mac ?? macFor(c.state.id),
      ...(c.guestNet ? { guestNet: c.guestNet } : {}),
      hasImageDisk: c.image.kind === 'archive',
      rootDisk: { file: basename(root.path), format: root.format },
      ...(taken.files.kernel ? { kernelFile: basename(taken.files.kernel) } : {}),
    },
    ...(c.opts.volumes.length > 0 && !startup ? { volumes: { mappings: c.opts.volumes, tables: volumeTables ?? [] } } : {}),
    files,
    ...(startup ? { startup } : {}),
  };
  // The checksums were just computed from these very files: later restores need not read them again.
  await stampSnapshot(partial, meta);
  failpoint('snapshot:complete');
  // The checksums took seconds: a requester that went away meanwhile (Ctrl-C) still
  // cancels it, up to the commit, which is one rename.
  signal?.throwIfAborted();
  await commitSnapshot(c.env.layout, partial, meta);
  return meta;
}

/** A hard link where possible (the source is never written again), else a copy. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}
