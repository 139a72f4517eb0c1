import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

let built: string | undefined;

/**
 * Builds test/fixtures/volprobe.c as a static binary (it runs in the guest's busybox
 * container too). Returns its path, or undefined with the reason when no C compiler is here.
 */
export function volprobe(): { path?: string; why?: string } {
  if (built && existsSync(built)) return { path: built };
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-volprobe-'));
  // It serves the whole test file: removed when the test process ends.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'volprobe');
  try {
    execFileSync('cc', ['-static', '-O2', '-o', out, resolve('test/fixtures/volprobe.c')], { stdio: 'pipe' });
  } catch (e) {
    return { why: `cannot build volprobe with cc -static (apt-get install gcc libc6-dev): ${(e as Error).message.split('\n')[0]}` };
  }
  return { path: (built = out) };
}
