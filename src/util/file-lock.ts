import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileLockOps } from '../os/libc.js';
import { sleep } from './proc.js';

/**
 * Runs `fn` holding an exclusive flock on `path`. The kernel releases the lock if this
 * process dies, so a crash never leaves it held. Waits (polling, without blocking the
 * event loop) up to `timeoutMs`.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 30_000, onWait?: () => void): Promise<T> {
  mkdirSync(dirname(path), { recursive: true });
  const ops = await fileLockOps();
  const fd = openSync(path, 'a');
  try {
    const end = Date.now() + timeoutMs;
    let waited = false;
    while (!ops.tryLockExclusive(fd)) {
      if (!waited) onWait?.();
      waited = true;
      if (Date.now() > end) throw new Error(`could not lock ${path} within ${timeoutMs} ms`);
      await sleep(5 + Math.random() * 10);
    }
    try {
      return await fn();
    } finally {
      ops.unlock(fd);
    }
  } finally {
    closeSync(fd);
  }
}
