import { readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isFcvmError } from '../errors/fcvm-error.js';
import type { Layout } from '../setup/layout.js';
import { isOwnerAlive, StateStore } from '../state/store.js';
import { withFileLock } from '../util/file-lock.js';
import type { Logger } from '../util/log.js';
import { listServes } from './serve-state.js';
import { isStartupTag } from './startup-key.js';
import { loadSnapshot, removeSnapshot, verifySnapshot, type SnapshotMeta } from './store.js';

/** A file in a startup snapshot whose mtime says when it was last used (not part of its checksums). */
export const LAST_USED = '.last-used';

export type StartupLookup =
  | { kind: 'hit'; dir: string; meta: SnapshotMeta }
  | { kind: 'miss' }
  /** The entry was there but unusable (and removed, unless in use): why. */
  | { kind: 'broken'; why: string };

/**
 * Finds the startup snapshot `tag` for `key`, checked as a clone checks its snapshot
 * (files unchanged since their last full check are trusted). A corrupt entry, one from
 * another version, or one whose base file is gone is removed (unless in use) and
 * reported as broken, so the run rebuilds it.
 */
export async function lookupStartup(layout: Layout, log: Logger, tag: string, key: string): Promise<StartupLookup> {
  let found: { dir: string; meta: SnapshotMeta };
  try {
    found = await loadSnapshot(layout, tag);
    if (found.meta.startup?.key !== key) throw new Error(`it was made for another key (${found.meta.startup?.key?.slice(0, 12) ?? 'none'})`);
    await verifySnapshot(found.dir, found.meta, { trustStamp: true });
    if (!(await stat(found.meta.machine.rootfs).then(() => true, () => false))) throw new Error(`its base file ${found.meta.machine.rootfs} is gone`);
  } catch (e) {
    if (isFcvmError(e) && e.code === 'SNAPSHOT_NOT_FOUND') return { kind: 'miss' };
    const why = isFcvmError(e) ? e.message.replace(/^snapshot "[^"]*" is /, '') : (e as Error).message;
    await removeStartupSnapshot(layout, log, tag).catch((err) => log.debug({ err }, 'could not remove a broken startup snapshot'));
    return { kind: 'broken', why };
  }
  await touchLastUsed(found.dir);
  return { kind: 'hit', ...found };
}

/** Marks a startup snapshot as used now (for pruning by age and size). */
export async function touchLastUsed(dir: string): Promise<void> {
  const now = new Date();
  await utimes(join(dir, LAST_USED), now, now).catch(() => writeFile(join(dir, LAST_USED), '').catch(() => {}));
}

/**
 * Who uses each snapshot tag: running servers and clones (a startup snapshot's runs are
 * clones of it). It reads state without reaping (reaping takes the allocation lock, which
 * deleting a snapshot holds while it asks).
 */
export async function snapshotUsers(layout: Layout, log: Logger): Promise<Map<string, string[]>> {
  const users = new Map<string, string[]>();
  const add = (tag: string, who: string) => users.set(tag, [...(users.get(tag) ?? []), who]);
  for (const s of await listServes(layout, log)) add(s.tag, `serve ${s.pid}`);
  for (const e of await new StateStore(layout.vmState).list()) {
    if (!e.ok || !isOwnerAlive(e.state)) continue;
    if (e.state.clone) add(e.state.clone.tag, `clone ${e.state.name}`);
    if (e.state.startupSnapshot) add(e.state.startupSnapshot, `VM ${e.state.name}`);
  }
  return users;
}

/** Removes a snapshot unless something uses it; under the allocation lock that claims take. */
export async function removeStartupSnapshot(layout: Layout, log: Logger, tag: string): Promise<boolean> {
  return withFileLock(join(layout.locks, 'alloc.lock'), async () => {
    if ((await snapshotUsers(layout, log)).get(tag)?.length) return false;
    await removeSnapshot(layout, tag);
    return true;
  });
}

export interface StartupEntry {
  tag: string;
  dir: string;
  /** Bytes on disk (files are sparse). */
  bytes: number;
  lastUsedMs: number;
  broken: boolean;
}

/** Every startup snapshot directory with its size on disk and when it was last used. */
export async function listStartupEntries(layout: Layout): Promise<StartupEntry[]> {
  const tags = (await readdir(layout.snapshots).catch(() => [] as string[])).filter(isStartupTag);
  const out: StartupEntry[] = [];
  for (const tag of tags) {
    // A snapshot a user made (its meta says so) is never the cache's, whatever its tag.
    const meta = await loadSnapshot(layout, tag).then((s) => s.meta, () => undefined);
    if (meta && !meta.startup) continue;
    const dir = join(layout.snapshots, tag);
    let bytes = 0;
    let newest = 0;
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      const s = await stat(join(dir, f)).catch(() => undefined);
      if (!s) continue;
      bytes += s.blocks * 512;
      newest = Math.max(newest, f === LAST_USED || f === 'meta.json' ? s.mtimeMs : 0);
    }
    out.push({ tag, dir, bytes, lastUsedMs: newest, broken: !meta });
  }
  return out;
}

export interface PrunePolicy {
  /** Remove entries not used for this long. */
  olderThanMs?: number;
  /** Then remove the least recently used until the rest take at most this many bytes. */
  maxBytes?: number;
  /** Remove every entry not in use. */
  all?: boolean;
}

/** Which entries a policy removes: broken ones, old ones, then the least recently used over the size. Pure. */
export function choosePrunes(entries: readonly StartupEntry[], inUse: ReadonlySet<string>, policy: PrunePolicy, nowMs: number): StartupEntry[] {
  const doomed = new Set<StartupEntry>();
  for (const e of entries) {
    if (inUse.has(e.tag)) continue;
    if (policy.all || e.broken || (policy.olderThanMs !== undefined && nowMs - e.lastUsedMs > policy.olderThanMs)) doomed.add(e);
  }
  if (policy.maxBytes !== undefined) {
    let total = entries.filter((e) => !doomed.has(e)).reduce((n, e) => n + e.bytes, 0);
    for (const e of [...entries].sort((a, b) => a.lastUsedMs - b.lastUsedMs)) {
      if (total <= policy.maxBytes) break;
      if (doomed.has(e) || inUse.has(e.tag)) continue;
      doomed.add(e);
      total -= e.bytes;
    }
  }
  return entries.filter((e) => doomed.has(e));
}

/** `fcvm snapshots prune`: removes startup snapshots by the policy; entries in use stay. */
export async function pruneStartup(layout: Layout, log: Logger, policy: PrunePolicy): Promise<{ removed: StartupEntry[]; kept: StartupEntry[]; skippedInUse: string[] }> {
  return withFileLock(join(layout.locks, 'alloc.lock'), async () => {
    const entries = await listStartupEntries(layout);
    const users = await snapshotUsers(layout, log);
    const inUse = new Set(entries.filter((e) => users.get(e.tag)?.length).map((e) => e.tag));
    const removed = choosePrunes(entries, inUse, policy, Date.now());
    for (const e of removed) await removeSnapshot(layout, e.tag);
    return { removed, kept: entries.filter((e) => !removed.includes(e)), skippedInUse: [...inUse] };
  });
}
