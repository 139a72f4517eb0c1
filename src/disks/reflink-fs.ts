import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { errors } from '../errors/catalogue.js';
import type { Layout } from '../setup/layout.js';
import { run, which } from '../util/exec.js';

/** True if `path` is a mount point (an entry of /proc/self/mountinfo). */
export function isMountPoint(path: string, mountinfo = '/proc/self/mountinfo'): boolean {
  const text = readFileSync(mountinfo, 'utf8');
  // Field 5 is the mount point, with spaces and friends octal-escaped.
  const escaped = path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return text.split('\n').some((l) => l.split(' ')[4] === escaped);
}

/**
 * Creates the loop-mounted btrfs for raw disks under the base dir, for base dirs whose
 * own filesystem cannot reflink: a sparse image file, formatted and mounted. Disks and
 * snapshots then live in it. Root only; refused if it exists or if snapshots would be
 * hidden by it.
 */
export async function createReflinkFs(layout: Layout, bytes: number, progress: (line: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) throw errors.preflight('--reflink-fs', 'creating and mounting a filesystem needs root', 'Run "fcvm setup --reflink-fs SIZE" as root');
  if (!(await which('mkfs.btrfs'))) throw errors.preflight('command mkfs.btrfs', 'not found on PATH', 'Install it: apt-get install -y btrfs-progs');
  if (existsSync(layout.reflinkImage)) throw errors.invalidOption('--reflink-fs', String(bytes), `${layout.reflinkImage} exists already`, 'It is mounted at every fcvm command; remove it (with its disks and snapshots) to make a new one');
  const old = await readdir(layout.baseSnapshots).catch(() => [] as string[]);
  if (old.length > 0) {
    throw errors.invalidOption('--reflink-fs', String(bytes), `${layout.baseSnapshots} holds snapshots, which would move out of sight`, 'Delete them first ("fcvm snapshots delete TAG"), or keep the base dir as it is');
  }
  await mkdir(layout.base, { recursive: true });
  const f = await open(layout.reflinkImage, 'wx', 0o600);
  try {
    await f.truncate(bytes);
  } finally {
    await f.close();
  }
  try {
    await run('mkfs.btrfs', ['-q', '-L', 'fcvm-reflink', layout.reflinkImage]);
    await mountReflinkFs(layout);
  } catch (e) {
    await rm(layout.reflinkImage, { force: true });
    throw e;
  }
  progress(`reflink filesystem: a ${Math.round(bytes / 2 ** 30)} GiB btrfs image (sparse) at ${layout.reflinkImage}, mounted at ${layout.reflinkMount}; VM disks and snapshots go there`);
}

async function mountReflinkFs(layout: Layout): Promise<void> {
  await mkdir(layout.reflinkMount, { recursive: true, mode: 0o755 });
  await run('mount', ['-o', 'loop,noatime', layout.reflinkImage, layout.reflinkMount]);
}

/**
 * Mounts the reflink filesystem if the base dir has one that is not mounted (after a
 * reboot, say). Nothing to do for base dirs without one.
 */
export async function ensureReflinkFs(layout: Layout): Promise<void> {
  if (!existsSync(layout.reflinkImage) || isMountPoint(layout.reflinkMount)) return;
  if (process.getuid?.() !== 0) throw errors.reflinkFsUnmounted(layout.reflinkImage, layout.reflinkMount);
  await mountReflinkFs(layout);
}
