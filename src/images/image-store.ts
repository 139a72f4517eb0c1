import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ownerTag } from '../util/owner-tag.js';
import { removeTree } from '../util/remove-tree.js';
import { run } from '../util/exec.js';
import { failpoint } from '../util/failpoint.js';

/** The start of the name of a store build's run root in /tmp. */
export const STORE_RUN_PREFIX = '.fcvm-store.';

/** The mkfs.ext4 arguments for a store of `blocks` 4 KiB blocks in `files` files. Pure. */
export function mkfsArgs(tree: string, disk: string, blocks: number, files: number): string[] {
  // Room for directories and ext4's own metadata; no journal (mounted read-only, never
  // written) and no reserved blocks.
  const size = blocks + Math.ceil(blocks / 10) + Math.ceil(files / 4) + 4096;
  return ['-q', '-F', '-b', '4096', '-m', '0', '-O', '^has_journal,^resize_inode', '-N', String(files + 1024), '-E', 'root_owner=0:0', '-L', 'fcvm-images', '-d', tree, disk, String(size)];
}

/**
 * A build command: killed with fcvm (a load must not go on writing into a tree the
 * reaper removes), and as root of the user's podman namespace when fcvm is not root,
 * so that the files keep the image's owners.
 */
function asStoreOwner(cmd: string, args: string[]): [string, string[]] {
  return ['setpriv', ['--pdeathsig', 'KILL', ...(process.getuid?.() === 0 ? [cmd, ...args] : ['podman', 'unshare', cmd, ...args])]];
}

/** Blocks and files under `dir` (du's count; the tree is podman's, its owners may be subordinate IDs). */
async function usage(dir: string): Promise<{ blocks: number; files: number }> {
  const [c1, a1] = asStoreOwner('du', ['-s', '--inodes', dir]);
  const [c2, a2] = asStoreOwner('du', ['-s', '--block-size=4096', dir]);
  const files = Number((await run(c1, a1)).split('\t')[0]);
  const blocks = Number((await run(c2, a2)).split('\t')[0]);
  return { blocks, files };
}

/** Removes a build tree; a rootless build's files belong to subordinate IDs, which only the user's namespace may remove. */
export async function removeStoreTree(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) await run('podman', ['unshare', 'rm', '-rf', dir]).catch(() => {});
  await removeTree(dir);
}

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
  // podman takes no run root longer than 50 characters (STORE_RUN_PREFIX: the reaper's too).
  const runroot = join('/tmp', `${STORE_RUN_PREFIX}${ownerTag()}.partial`);
  try {
    await mkdir(work);
    // Only this store's settings: none of the host's storage options apply to the guest.
    await writeFile(conf, `[storage]\ndriver = "overlay"\ngraphroot = "${root}"\nrunroot = "${runroot}"\n`);
    const env = { CONTAINERS_STORAGE_CONF: conf };
    const { execa } = await import('execa');
    const dying = (args: string[]) => ['--pdeathsig', 'KILL', 'podman', ...args];
    await execa('setpriv', dying(['save', '--quiet', '--format', 'docker-archive', id]), { stdin: 'ignore', buffer: false })
      .pipe('setpriv', dying(['--root', root, '--runroot', runroot, '--storage-driver', 'overlay', 'load', '--quiet']), { env });
    failpoint('image-store:loaded');
    // podman's own bookkeeping is not part of an image store.
    for (const f of await readdir(root)) if (!['overlay', 'overlay-images', 'overlay-layers'].includes(f)) await removeStoreTree(join(root, f));
    const { blocks, files } = await usage(root);
    const [cmd, args] = asStoreOwner('mkfs.ext4', mkfsArgs(root, join(work, 'disk'), blocks, files));
    await run(cmd, args);
    await rename(join(work, 'disk'), out);
    await pruneImageCache(cacheDir);
  } finally {
    await removeStoreTree(work);
    await removeStoreTree(runroot);
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
