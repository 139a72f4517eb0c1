import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { errors } from '../errors/catalogue.js';
import type { Layout } from '../setup/layout.js';
import { listVms } from '../state/list.js';
import { reapLeftovers } from '../state/reaper.js';
import { withFileLock } from '../util/file-lock.js';
import type { Logger } from '../util/log.js';
import { listServes, type ServeState } from './serve-state.js';
import { listSnapshots, removeSnapshot, SNAPSHOT_FILES } from './store.js';
import { LAST_USED, snapshotUsers } from './startup-cache.js';

export interface SnapshotListing {
  tag: string;
  image: string;
  /** The image's ID when the snapshot was taken (a re-imported image has another). */
  imageId?: string;
  sourceName: string;
  vcpus: number;
  memoryMiB: number;
  /** Bytes the memory file takes on disk (it is sparse). */
  memoryFileBytes: number;
  diskBytes: number;
  createdAt: string;
  pausedMs: number;
  network: string;
  /** Servers ("serve PID") and clones ("clone NAME") using it. */
  users: string[];
  /** A startup snapshot (the cache of `podman run`, pruned by `snapshots prune`): when it was last used. */
  startup?: { key: string; lastUsedAt: string };
}

const lastUsed = async (dir: string, created: string) => stat(join(dir, LAST_USED)).then((s) => s.mtime.toISOString(), () => created);

const allocated = async (path: string) => stat(path).then((s) => s.blocks * 512, () => 0);

export async function describeSnapshots(layout: Layout, log: Logger): Promise<(SnapshotListing | { tag: string; error: string })[]> {
  await reapLeftovers(layout, log);
  const users = await snapshotUsers(layout, log);
  const out: (SnapshotListing | { tag: string; error: string })[] = [];
  for (const s of await listSnapshots(layout)) {
    if ('error' in s) {
      out.push(s);
      continue;
    }
    out.push({
      tag: s.tag,
      image: s.meta.plan.image,
      ...(s.meta.plan.imageId ? { imageId: s.meta.plan.imageId } : {}),
      sourceName: s.meta.source.name,
      vcpus: s.meta.machine.vcpus,
      memoryMiB: s.meta.machine.memoryMiB,
      memoryFileBytes: await allocated(join(s.dir, SNAPSHOT_FILES.memory)),
      diskBytes: await allocated(join(s.dir, s.meta.machine.rootDisk.file)),
      createdAt: s.meta.createdAt,
      pausedMs: s.meta.pausedMs,
      network: s.meta.plan.network.mode,
      users: users.get(s.tag) ?? [],
      ...(s.meta.startup ? { startup: { key: s.meta.startup.key, lastUsedAt: await lastUsed(s.dir, s.meta.createdAt) } } : {}),
    });
  }
  return out;
}

/** Running servers, each with the clones it owns. */
export async function listServesWithClones(layout: Layout, log: Logger): Promise<(ServeState & { clones: { name: string; pid: number; status: string }[] })[]> {
  const vms = await listVms(layout, log);
  return (await listServes(layout, log)).map((s) => ({
    ...s,
    clones: vms.filter((v) => v.clone?.servePid === s.pid).map((v) => ({ name: v.name, pid: v.pid, status: v.status })),
  }));
}

/**
 * Deletes a snapshot unless a server or clone uses it. Under the allocation lock, which
 * a clone holds while it claims its name, so no clone can start from it meanwhile.
 */
export async function deleteSnapshot(layout: Layout, log: Logger, tag: string): Promise<void> {
  // Reaping takes the lock itself (flock is not re-entrant): reap first, then look.
  await reapLeftovers(layout, log);
  await withFileLock(join(layout.locks, 'alloc.lock'), async () => {
    const users = (await snapshotUsers(layout, log)).get(tag) ?? [];
    if (users.length > 0) throw errors.snapshotInUse(tag, users.join(', '));
    await removeSnapshot(layout, tag);
  });
}
