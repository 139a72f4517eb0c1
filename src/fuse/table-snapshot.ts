/**
 * A volume server's tables across a snapshot. A clone's guest kernel still holds the
 * source's nodeids and file handles, and its relay re-sends the requests that were in
 * flight: the clone's own server must know them. So the snapshot records each inode as
 * its path below the root (read from the descriptor's /proc link at snapshot time, so
 * renames on either side are seen), with its lookup count, and each open handle as its
 * inode and open flags. The clone's server reopens them on first use, below its own
 * root (which may be another host directory), and answers ESTALE for what is gone.
 */
import { readlinkSync } from 'node:fs';
import * as z from 'zod/mini';
import type { VolumeSession } from './session.js';
import { invalEntry, invalInode } from './notes.js';

export const VolumeTableSchema = z.object({
  index: z.int(),
  minor: z.int(),
  nextNodeid: z.string(),
  nextFh: z.string(),
  /** Paths are the host's bytes as latin1, so any file name survives JSON. */
  inodes: z.array(z.object({ nodeid: z.string(), nlookup: z.string(), path: z.string() })),
  handles: z.array(z.object({ fh: z.string(), nodeid: z.string(), flags: z.int(), dir: z.boolean() })),
});
export type VolumeTable = z.infer<typeof VolumeTableSchema>;

const fdPath = (fd: number) => readlinkSync(`/proc/self/fd/${fd}`, { encoding: 'buffer' }).toString('latin1');

export function snapshotTable(index: number, s: VolumeSession): VolumeTable {
  const fs = s.fs;
  const root = fs.inodes.require(1n);
  const rootPath = fdPath(root.fd);
  const inodes: VolumeTable['inodes'] = [];
  for (const i of fs.inodes.all()) {
    if (i.nodeid === 1n) continue;
    let path = i.restorePath;
    if (i.fd >= 0) {
      const p = fdPath(i.fd);
      // A deleted file, or one moved out of the root on the host, cannot come back.
      path = p.startsWith(`${rootPath}/`) && !p.endsWith(' (deleted)') ? p.slice(rootPath.length + 1) : undefined;
    }
    if (path !== undefined) inodes.push({ nodeid: String(i.nodeid), nlookup: String(i.nlookup), path });
  }
  const handles = [...fs.handles.all()].map((h) => ({ fh: String(h.fh), nodeid: String(h.nodeid), flags: h.flags, dir: h.dir }));
  return {
    index,
    minor: s.negotiated?.minor ?? 0,
    nextNodeid: String(fs.inodes.counter),
    nextFh: String(fs.handles.counter),
    inodes,
    handles,
  };
}

export function restoreTable(s: VolumeSession, t: VolumeTable): void {
  const fs = s.fs;
  if (t.minor > 0) s.negotiated = { minor: t.minor };
  for (const i of t.inodes) fs.inodes.restore(BigInt(i.nodeid), BigInt(i.nlookup), Buffer.from(i.path, 'latin1').toString('latin1'));
  for (const h of t.handles) fs.handles.restore(BigInt(h.fh), BigInt(h.nodeid), h.flags, h.dir);
  fs.inodes.counter = BigInt(t.nextNodeid);
  fs.handles.counter = BigInt(t.nextFh);
}

/**
 * What the guest must forget when the host directory may differ from what it cached (a
 * clone's, or after host events were lost): every name it knows (INVAL_ENTRY) and every
 * inode's attributes and pages. An inode's name is its path below the root.
 */
export function* invalidations(s: VolumeSession): Generator<Buffer> {
  const paths = new Map<bigint, string>();
  for (const i of s.fs.inodes.all()) {
    const path = i.nodeid === 1n ? undefined : i.fd >= 0 ? s.fs.pathOf(i.fd) : i.restorePath;
    if (path !== undefined) paths.set(i.nodeid, path);
  }
  const byPath = new Map<string, bigint>([['', 1n]]);
  for (const [nodeid, path] of paths) byPath.set(path, nodeid);
  for (const i of s.fs.inodes.all()) {
    const path = paths.get(i.nodeid);
    if (path !== undefined) {
      const slash = path.lastIndexOf('/');
      const parent = byPath.get(slash < 0 ? '' : path.slice(0, slash));
      if (parent !== undefined) yield invalEntry(parent, Buffer.from(path.slice(slash + 1), 'latin1'));
    }
    yield invalInode(i.nodeid);
  }
}
