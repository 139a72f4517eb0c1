import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod/mini';
import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { GuestNetSchema, HealthcheckSchema } from '../protocol/api.js';
import { VolumeTableSchema } from '../fuse/table-snapshot.js';
import type { Layout } from '../setup/layout.js';
import { writeFileAtomic } from '../util/fs-atomic.js';
import { ownerTag } from '../util/owner-tag.js';
import { removeTree } from '../util/remove-tree.js';

/**
 * 2: clones boot a kernel stub kept in the snapshot. 4: the driver names its files (root
 * disk, kernel stub). 5: QEMU VMs have a balloon device (free page reporting), whose
 * state a clone must find in the snapshot.
 */
export const SNAPSHOT_SCHEMA = 5;

const FileSumSchema = z.object({ size: z.int().check(z.nonnegative()), sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/)) });

/**
 * A snapshot's meta.json: what the clone must recreate (the source's machine and run
 * plan) and a checksum of every file, so a damaged snapshot is refused, never booted.
 */
export const SnapshotMetaSchema = z.object({
  schema: z.literal(SNAPSHOT_SCHEMA),
  tag: z.string(),
  createdAt: z.string(),
  /** How long the source was paused. */
  pausedMs: z.number(),
  source: z.object({ name: z.string(), id: z.string() }),
  /** The source's run plan: a clone runs the same container. */
  plan: z.object({
    image: z.string(),
    imageId: z.optional(z.string()),
    healthcheck: z.optional(HealthcheckSchema),
    command: z.optional(z.array(z.string())),
    env: z.record(z.string(), z.string()),
    privileged: z.boolean(),
    network: z.object({
      mode: z.enum(['bridged', 'rootless', 'none']),
      publish: z.array(z.object({ hostIp: z.string(), hostPort: z.int(), guestPort: z.int(), proto: z.enum(['tcp', 'udp']) })),
    }),
  }),
  /** The machine a clone must recreate device for device. */
  machine: z.object({
    hypervisor: z.enum(['qemu', 'firecracker']),
    accel: z.enum(['kvm', 'tcg']),
    kernel: z.string(),
    initrd: z.string(),
    cmdline: z.string(),
    vcpus: z.int(),
    memoryMiB: z.int(),
    /** The base image the frozen root disk is backed by. */
    rootfs: z.string(),
    mac: z.string(),
    guestNet: z.optional(GuestNetSchema),
    hasImageDisk: z.boolean(),
    /** The frozen root disk: its file in the snapshot and its format. */
    rootDisk: z.object({ file: z.string(), format: z.enum(['raw', 'qcow2']) }),
    /** A kernel stub for restores, for a VMM that loads a kernel even then (QEMU). */
    kernelFile: z.optional(z.string()),
    /** The source's vCPUs had virtualization extensions (nested profile): a clone's must too. */
    nested: z.optional(z.boolean()),
  }),
  /**
   * The source's volumes (--map) in their channel order, and its volume server's tables
   * at the pause, so a clone's server knows the nodeids and handles its guest holds.
   */
  volumes: z.optional(z.object({
    mappings: z.array(z.object({ host: z.string(), guest: z.string(), readOnly: z.boolean() })),
    tables: z.array(VolumeTableSchema),
  })),
  /** Every file of the snapshot (relative names) with its size and SHA-256. */
  files: z.record(z.string(), FileSumSchema),
  /**
   * Set on a startup snapshot (a cache entry of `podman run`): taken before the container
   * started, and found by `key` (see snapshot/startup-key.ts).
   */
  startup: z.optional(z.object({ key: z.string(), fcvm: z.string() })),
});
export type SnapshotMeta = z.infer<typeof SnapshotMetaSchema>;

/** The files of a snapshot directory. */
export const SNAPSHOT_FILES = { meta: 'meta.json', state: 'state', memory: 'memory', image: 'image', stamp: '.verified.json', workingSet: 'working-set' } as const;

export const snapshotDir = (layout: Layout, tag: string) => join(layout.snapshots, tag);

/** A directory a snapshot is written into, renamed to its tag when complete. Reaped if its writer dies. */
export const partialSnapshotDir = (layout: Layout, tag: string) => join(layout.snapshots, `.${tag}.${ownerTag()}.partial`);

export async function sha256File(path: string): Promise<{ size: number; sha256: string }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: h.digest('hex') };
}

/** Writes meta.json into a complete partial directory and renames it to its tag. */
export async function commitSnapshot(layout: Layout, partial: string, meta: SnapshotMeta): Promise<void> {
  await writeFileAtomic(join(partial, SNAPSHOT_FILES.meta), JSON.stringify(meta, null, 2) + '\n');
  try {
    await rename(partial, snapshotDir(layout, meta.tag));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTEMPTY') throw errors.snapshotExists(meta.tag);
    throw e;
  }
}

/** Reads and validates meta.json, and checks that every file is there with its size. */
export async function loadSnapshot(layout: Layout, tag: string): Promise<{ dir: string; meta: SnapshotMeta }> {
  const dir = snapshotDir(layout, tag);
  let text: string;
  try {
    text = await readFile(join(dir, SNAPSHOT_FILES.meta), 'utf8');
  } catch {
    if (await stat(dir).then(() => true, () => false)) throw errors.snapshotCorrupt(tag, 'meta.json is missing');
    throw errors.snapshotNotFound(tag);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw errors.snapshotCorrupt(tag, `meta.json is not JSON (${(e as Error).message})`);
  }
  const schema = (raw as { schema?: unknown })?.schema;
  if (schema !== SNAPSHOT_SCHEMA) throw errors.snapshotCorrupt(tag, `schema version ${String(schema)}, this fcvm reads ${SNAPSHOT_SCHEMA}`);
  const parsed = SnapshotMetaSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw errors.snapshotCorrupt(tag, `meta.json does not match the schema at ${i?.path.join('.') || '(root)'}: ${i?.message}`);
  }
  const meta = parsed.data;
  if (meta.tag !== tag) throw errors.snapshotCorrupt(tag, `meta.json names tag "${meta.tag}"`);
  for (const [name, sum] of Object.entries(meta.files)) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (!st) throw errors.snapshotCorrupt(tag, `file "${name}" is missing`);
    if (st.size !== sum.size) throw errors.snapshotCorrupt(tag, `file "${name}" has ${st.size} bytes, expected ${sum.size}`);
  }
  return { dir, meta };
}

/** What a file looked like when its checksum last matched. */
interface FileIdentity {
  size: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
}

const identity = async (path: string): Promise<FileIdentity> => {
  const s = await stat(path);
  return { size: s.size, ino: s.ino, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs };
};

/**
 * Checks every file's SHA-256. With `trustStamp`, a file unchanged (same inode, size,
 * mtime and ctime) since its last successful check is not read again, as git's index
 * does: any write to a file changes its ctime, which only the kernel sets.
 */
export async function verifySnapshot(dir: string, meta: SnapshotMeta, opts: { trustStamp: boolean }): Promise<void> {
  const stampPath = join(dir, SNAPSHOT_FILES.stamp);
  const stamp: Record<string, FileIdentity> = opts.trustStamp ? await readFile(stampPath, 'utf8').then((t) => JSON.parse(t) as Record<string, FileIdentity>, () => ({})) : {};
  const fresh: Record<string, FileIdentity> = {};
  let changed = false;
  for (const [name, want] of Object.entries(meta.files)) {
    const path = join(dir, name);
    const id = await identity(path);
    const known = stamp[name];
    if (known && known.size === id.size && known.ino === id.ino && known.mtimeMs === id.mtimeMs && known.ctimeMs === id.ctimeMs) {
      fresh[name] = id;
      continue;
    }
    const got = await sha256File(path);
    if (got.sha256 !== want.sha256 || got.size !== want.size) throw errors.snapshotCorrupt(meta.tag, `file "${name}" does not match its checksum`);
    fresh[name] = id;
    changed = true;
  }
  if (changed || !opts.trustStamp) await writeFileAtomic(stampPath, JSON.stringify(fresh) + '\n').catch(() => {});
}

/**
 * Records every file as checked, as `verifySnapshot` would after reading it: for a
 * writer that has just computed the checksums itself.
 */
export async function stampSnapshot(dir: string, meta: SnapshotMeta): Promise<void> {
  const fresh: Record<string, FileIdentity> = {};
  for (const name of Object.keys(meta.files)) fresh[name] = await identity(join(dir, name));
  await writeFileAtomic(join(dir, SNAPSHOT_FILES.stamp), JSON.stringify(fresh) + '\n');
}

/** Every snapshot, complete or not: the broken ones with the reason. */
export async function listSnapshots(layout: Layout): Promise<({ tag: string; meta: SnapshotMeta; dir: string } | { tag: string; error: string })[]> {
  const tags = (await readdir(layout.snapshots).catch(() => [] as string[])).filter((t) => !t.startsWith('.')).sort();
  const out: ({ tag: string; meta: SnapshotMeta; dir: string } | { tag: string; error: string })[] = [];
  for (const tag of tags) {
    try {
      out.push({ tag, ...(await loadSnapshot(layout, tag)) });
    } catch (e) {
      out.push({ tag, error: isFcvmError(e) ? e.message : String(e) });
    }
  }
  return out;
}

/** Removes a snapshot: renamed away first, so no clone can find it half-deleted. */
export async function removeSnapshot(layout: Layout, tag: string): Promise<void> {
  const dir = snapshotDir(layout, tag);
  const doomed = partialSnapshotDir(layout, tag);
  try {
    await rename(dir, doomed);
  } catch {
    throw errors.snapshotNotFound(tag);
  }
  await removeTree(doomed);
}
