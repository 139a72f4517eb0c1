import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../util/log.js';
import { ownerAlive } from '../util/owner-tag.js';
import { killAndRemove } from './cgroup-fs.js';
import { existingCgroupParentsSync } from './cgroup-host.js';

/** A VM's cgroup directories as its state file recorded them. */
export async function removeCgroupDirs(dirs: readonly string[], log: Logger): Promise<void> {
  await killAndRemove(dirs).catch((e) => log.debug({ err: e, dirs }, 'could not remove a dead VM\'s cgroup'));
}

/**
 * VM cgroups (named by VM id, "HEX-PID-START") whose supervisor is gone, and the empty
 * leaves dead supervisors moved themselves into ("supervisor-PID-START"), wherever this
 * host keeps them: what a supervisor killed before it recorded its cgroup leaves behind.
 */
export async function reapOrphanCgroups(idAlive: (id: string) => boolean, log: Logger): Promise<void> {
  for (const parent of existingCgroupParentsSync()) {
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const dead = /^[0-9a-f]{6}-\d+-\d+$/.test(name) ? !idAlive(name) : name.startsWith('supervisor-') && !ownerAlive(name);
      if (!dead) continue;
      log.debug({ cgroup: join(parent, name) }, 'reaping the cgroup of a dead VM');
      await removeCgroupDirs([join(parent, name)], log);
    }
  }
}
