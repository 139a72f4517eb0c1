import { link, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ownerTag } from '../util/owner-tag.js';
import { removeTree } from '../util/remove-tree.js';
import { run } from '../util/exec.js';
import { failpoint } from '../util/failpoint.js';

/** The start of the name of a store build's run root in /tmp. */
export const STORE_RUN_PREFIX = '.fcvm-store.';

/**
 * The mkfs.ext4 arguments for a store of `bytes` of file data in `files` files. Pure.
 * Sized from apparent sizes plus a block per file (a host filesystem's own counts can be
 * smaller: inline or compressed files), with room for directories and ext4's metadata;
 * the disk is sparse, so room costs nothing. No journal (mounted read-only, never
 * written) and no reserved blocks.
 */
export function mkfsArgs(tree: string, disk: string, bytes: number, files: number): string[] {
  const blocks = Math.ceil(bytes / 4096) + files;
  const size = blocks + Math.ceil(blocks / 10) + 4096;
  return ['-q', '-F', '-b', '4096', '-m', '0', '-O', '^has_journal,^resize_inode', '-N', String(files + 1024), '-E', 'root_owner=0:0', '-L', 'fcvm-images', '-d', tree, disk, String(size)];
}

/** A build command that dies with fcvm: a load must not go on writing into a tree the reaper removes. */
const dying = (cmd: string, args: string[]): [string, string[]] => ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]];

/** Bytes (apparent) and files under `dir`. */
async function usage(dir: string): Promise<{ bytes: number; files: number }> {
  const files = Number((await run(...dying('du', ['-s', '--inodes', dir]))).split('\t')[0]);
  const bytes = Number((await run(...dying('du', ['-s', '--apparent-size', '--block-size=1', dir]))).split('\t')[0]);
  return { bytes, files };
}

/**
 * Whether this host builds image stores: only as root. A rootless podman marks opaque
 * directories with `user.overlay.opaque`, which the guest's podman (root) ignores, so
 * files a layer removed would come back; a rootless user's image goes as an archive.
 */
export const buildsStores = () => process.getuid?.() === 0;

/**
 * A store build's run root: in /tmp, as podman takes no run root longer than 50
 * characters. Made with an exclusive mkdir, mode 0700: a name someone else made first
 * fails the build (the archive is used) and is never used or removed.
 */
export const storeRunRoot = () => join('/tmp', `${STORE_RUN_PREFIX}${ownerTag()}.partial`);

/**
 * The host image `id` as a podman image store on a read-only ext4 disk, which the guest
 * mounts where its podman looks for one (GUEST_IMAGE_STORE in src/agent/image.ts). Built
 * once per image ID (an ID names immutable content, so a built store never goes stale):
 * `podman save | podman --root TMP load`, then `mkfs.ext4 -d TMP`. Host-side this costs
 * seconds; in the guest a `podman load` of the same archive takes a minute under
 * emulation for a 240 MB image, and its layers would fill the VM's own disk.
 */
export async function imageStoreDisk(id: string, cacheDir: string): Promise<string> {
  const out = join(cacheDir, `${id}.ext4`);
  if (await stat(out).then((s) => s.size > 0, () => false)) return out;
  await mkdir(cacheDir, { recursive: true });
  // A directory the reaper removes if this process dies (".NAME.PID-START.partial").
  const work = join(cacheDir, `.${id}.store.${ownerTag()}.partial`);
  const root = join(work, 'root');
  const conf = join(work, 'storage.conf');
  const runroot = storeRunRoot();
  let ours = false;
  try {
    await mkdir(work);
    await mkdir(runroot, { mode: 0o700 });
    ours = true;
    // Only this store's settings: none of the host's storage options apply to the guest.
    await writeFile(conf, `[storage]\ndriver = "overlay"\ngraphroot = "${root}"\nrunroot = "${runroot}"\n`);
    const env = { CONTAINERS_STORAGE_CONF: conf };
    const { execa } = await import('execa');
    await execa(...dying('podman', ['save', '--quiet', '--format', 'docker-archive', id]), { stdin: 'ignore', buffer: false })
      .pipe(...dying('podman', ['--root', root, '--runroot', runroot, '--storage-driver', 'overlay', 'load', '--quiet']), { env });
    failpoint('image-store:loaded');
    // podman's own bookkeeping is not part of an image store.
    for (const f of await readdir(root)) if (!['overlay', 'overlay-images', 'overlay-layers'].includes(f)) await removeTree(join(root, f));
    const { bytes, files } = await usage(root);
    await run(...dying('mkfs.ext4', mkfsArgs(root, join(work, 'disk'), bytes, files)));
    // Published with link(2), never over another: two first runs of one image each build
    // one, and the first one's disk may already be in a VM (and its snapshots).
    await link(join(work, 'disk'), out).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    await pruneImageCache(cacheDir);
  } finally {
    await removeTree(work);
    if (ours) await removeTree(runroot);
  }
  return out;
}

/**
 * Removes the cached stores and archives of images the host's podman no longer has, so
 * the cache holds no more than the host's own storage. Run after each new entry (not on
 * the hot path). A snapshot keeps its own link to its image disk, so none loses it.
 */
export async function pruneImageCache(cacheDir: string): Promise<void> {
  let ids: Set<string>;
  try {
    ids = new Set((await run('podman', ['images', '--all', '--no-trunc', '--format', '{{.Id}}'])).split('\n').map((l) => l.trim().replace(/^sha256:/, '')));
  } catch {
    return; // podman cannot say: keep everything
  }
  for (const f of await readdir(cacheDir).catch(() => [] as string[])) {
    const m = f.match(/^([0-9a-f]{64})\.(ext4|tar)$/);
    if (m && !ids.has(m[1]!)) await rm(join(cacheDir, f), { force: true }).catch(() => {});
  }
}
