import type { Writable } from 'node:stream';

/**
 * Calls `release` once `w` takes writes again ('drain') or never will ('close': its
 * reader went away). Both listeners go with the first.
 */
export function onceWritable(w: Writable, release: () => void): void {
  const done = () => {
    w.off('drain', done);
    w.off('close', done);
    release();
  };
  w.once('drain', done);
  w.once('close', done);
}
