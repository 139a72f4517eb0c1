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
  /** One directory per snapshot tag. */
  snapshots: string;
  /** One state file per running `snapshot serve`. */
  serveState: string;
}

export function defaultBaseDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (env.FCVM_BASE_DIR) return resolve(env.FCVM_BASE_DIR);
  if (uid === 0) return '/var/lib/fcvm';
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'fcvm');
}

export function layoutFor(base: string): Layout {
  const b = resolve(base);
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
    snapshots: join(b, 'snapshots'),
    serveState: join(b, 'state', 'serves'),
  };
}
