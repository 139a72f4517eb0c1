import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** tmpfs, where a cold VM's RAM file lives: the guest's writes never reach a disk. */
export const SHM = '/dev/shm';
export const MEMORY_FILE_PREFIX = 'fcvm-mem-';

/** The RAM file of the VM `id`: in /dev/shm when there is one, else in its run directory. */
export function memoryFileFor(id: string, runDir: string): string {
  return existsSync(SHM) ? join(SHM, `${MEMORY_FILE_PREFIX}${id}`) : join(runDir, 'memory');
}

