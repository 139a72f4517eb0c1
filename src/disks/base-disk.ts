import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import type { Layout } from '../setup/layout.js';
import type { Manifest } from '../setup/manifest.js';
import { ownerTag } from '../util/owner-tag.js';

/**
 * Where the raw root image that VM disks are reflinked from lies: the rootfs artifact
 * itself when it is on the disk root's filesystem, else its copy in base-disks/ on the
 * reflink filesystem (named by the artifact's hash; made once by setup).
 */
export async function rawBaseDisk(layout: Layout, manifest: Manifest): Promise<{ path: string; ready: boolean }> {
  const [a, d] = await Promise.all([stat(manifest.rootfs.path), stat(layout.diskRoot).catch(() => undefined)]);
  if (d && a.dev === d.dev) return { path: manifest.rootfs.path, ready: true };
  const path = join(layout.baseDisks, `rootfs-${manifest.rootfs.hash}.ext4`);
  return { path, ready: existsSync(path) };
}

/** The raw base disk, or an error saying to run setup (which copies it, once). */
export async function requireRawBaseDisk(layout: Layout, manifest: Manifest): Promise<string> {
  const b = await rawBaseDisk(layout, manifest);
  if (!b.ready) throw errors.setupMissing(layout.base, `the root image on the reflink filesystem (${b.path})`);
  return b.path;
}

/**
 * Copies the rootfs artifact onto the reflink filesystem if VM disks cannot reflink it
 * where it is: one full copy, once per artifact, said out loud.
 */
export async function prepareRawBaseDisk(layout: Layout, manifest: Manifest, progress: (line: string) => void): Promise<void> {
  const b = await rawBaseDisk(layout, manifest);
  if (b.ready) return;
  const size = (await stat(manifest.rootfs.path)).size;
  progress(`reflink filesystem: copying the root image into it, once (${Math.round(size / 2 ** 20)} MiB)`);
  await mkdir(dirname(b.path), { recursive: true });
  const tmp = join(dirname(b.path), `.${basename(b.path)}.${ownerTag()}.partial`);
  try {
    await copyFile(manifest.rootfs.path, tmp);
    await rename(tmp, b.path);
  } finally {
    await rm(tmp, { force: true });
  }
}
