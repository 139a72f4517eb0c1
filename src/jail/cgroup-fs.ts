import { readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../util/proc.js';

/** Writes one value to a cgroup control file. */
export const writeControl = (dir: string, file: string, value: string | number) => writeFile(join(dir, file), String(value));

/** The processes in the cgroup `dir` (none if it is gone). */
export async function cgroupPids(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number);
}

/**
 * Kills every process in `dirs` (`fast` kills them all at once where the kernel can,
 * cgroup v2's cgroup.kill) and removes the directories once they are empty. A missing
 * directory is fine: the cgroup is gone already.
 */
export async function killAndRemove(dirs: readonly string[], fast?: (dir: string) => Promise<boolean>): Promise<void> {
  for (const dir of dirs) {
    if (fast && (await fast(dir))) continue;
    for (const pid of await cgroupPids(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  // A killed process leaves its cgroup only once the kernel has reaped it.
  for (const dir of dirs) {
    for (let attempt = 0; ; attempt++) {
      try {
        await rmdir(dir);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || attempt >= 100) throw e;
        for (const pid of await cgroupPids(dir)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await sleep(20);
      }
    }
  }
}
