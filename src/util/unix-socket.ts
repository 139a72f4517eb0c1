import { connect, type Socket } from 'node:net';
import { sleep } from './proc.js';

/** Connects to a listening Unix socket; rejects with the connection error. */
export function connectUnix(path: string): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Connects to a Unix socket that a child process is about to create, retrying with
 * backoff. Gives up when `alive()` turns false or after `timeoutMs`, rejecting with
 * the last connection error.
 */
export async function connectWhenReady(path: string, timeoutMs: number, alive: () => boolean): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  // Polls of at most 5 ms: a cap of 50 ms made a QEMU whose socket appeared at 35 ms
  // (a jailed one, measured) wait until the 62 ms poll; a failed connect costs microseconds.
  for (let delay = 2; ; delay = Math.min(delay * 2, 5)) {
    try {
      return await connectUnix(path);
    } catch (e) {
      if (!alive() || Date.now() > deadline) throw e;
      await sleep(delay);
    }
  }
}
