import { existsSync } from 'node:fs';
import { open, statfs } from 'node:fs/promises';
import { join } from 'node:path';

/** tmpfs, where a cold VM's RAM file lives: the guest's writes never reach a disk. */
export const SHM = '/dev/shm';
export const MEMORY_FILE_PREFIX = 'fcvm-mem-';

/**
 * Creates the RAM file of the VM `id` and returns its path: in /dev/shm when it has room
 * for all of the guest's RAM (a full tmpfs would kill the VM with SIGBUS), else in the
 * run directory. Created here, owner-only and exclusively, before QEMU opens it: QEMU
 * would create it world-readable, and would use a file someone else put there.
 */
export async function createMemoryFile(id: string, runDir: string, memoryMiB: number): Promise<string> {
  const bytes = memoryMiB * 2 ** 20;
  const shmFree = existsSync(SHM) ? await statfs(SHM).then((s) => s.bavail * s.bsize, () => 0) : 0;
  const path = shmFree > bytes ? join(SHM, `${MEMORY_FILE_PREFIX}${id}`) : join(runDir, 'memory');
  const f = await open(path, 'wx', 0o600);
  try {
    await f.truncate(bytes);
  } finally {
    await f.close();
  }
  return path;
}
