import { readFile, rm } from 'node:fs/promises';
import { run } from './exec.js';

/**
 * Removes a directory tree, unmounting first whatever is mounted inside it (a killed
 * debootstrap leaves proc and sys mounted in its target), deepest first.
 */
export async function removeTree(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}
