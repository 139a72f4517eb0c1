import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Where everything lives. The default base directory is /var/lib/fcvm for root and
 * $XDG_DATA_HOME/fcvm (~/.local/share/fcvm) for other users; FCVM_BASE_DIR or
 * --base-dir overrides it.
 */
export interface Layout {
  base: string;
  artifacts: string;
  manifest: string;
  debs: string;
  imageCache: string;
  accelCache: string;
  vmState: string;
  vmRuntime: string;
  locks: string;
  /** One directory per snapshot tag, on the disk root. */
  snapshots: string;
  /** Where snapshots are when the base dir has no reflink filesystem. */
  baseSnapshots: string;
  /**
   * Where raw disks live: a loop-mounted btrfs under the base dir if setup made one
   * (`reflinkImage` exists), else the base dir itself.
   */
  diskRoot: string;
  reflinkImage: string;
  /** Where the reflink filesystem is mounted (the disk root, once it exists). */
  reflinkMount: string;
  /** The base images raw disks are reflinked from, when they are not in the artifacts. */
  baseDisks: string;
  /** One working directory per Firecracker VM, on the disk root: its disks and sockets. */
  vmmDirs: string;
  /** One state file per running `snapshot serve`. */
  serveState: string;
  /** One bounded, rotated log per VM (NAME.log, NAME.log.1). */
  logs: string;
}

export function defaultBaseDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (env.FCVM_BASE_DIR) return resolve(env.FCVM_BASE_DIR);
  if (uid === 0) return '/var/lib/fcvm';
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'fcvm');
}

export function layoutFor(base: string): Layout {
  const b = resolve(base);
  const reflinkImage = join(b, 'reflink.btrfs');
  const reflinkMount = join(b, 'reflink');
  const diskRoot = existsSync(reflinkImage) ? reflinkMount : b;
  return {
    base: b,
    artifacts: join(b, 'artifacts'),
    manifest: join(b, 'artifacts', 'manifest.json'),
    debs: join(b, 'cache', 'debs'),
    imageCache: join(b, 'cache', 'images'),
    accelCache: join(b, 'cache', 'accel.json'),
    vmState: join(b, 'state', 'vms'),
    vmRuntime: join(b, 'vms'),
    locks: join(b, 'locks'),
    snapshots: join(diskRoot, 'snapshots'),
    baseSnapshots: join(b, 'snapshots'),
    diskRoot,
    reflinkImage,
    reflinkMount,
    baseDisks: join(diskRoot, 'base-disks'),
    vmmDirs: join(diskRoot, 'vmm'),
    serveState: join(b, 'state', 'serves'),
    logs: join(b, 'logs'),
  };
}
