/**
 * Input for a process in the guest (a container's or an exec's stdin) comes as fast as
 * the host sends it. What the process has not read yet waits in its stream, up to a
 * high water mark; past it the agent stops reading the session that brings it, so the
 * host stops reading its user's stdin, instead of the agent growing.
 */
import type { Writable } from 'node:stream';

/** Bytes waiting for a process past which its session's input is held. */
export const STDIN_HIGH_WATER = 1 << 20;

/** The sinks whose session is held now: one hold each, however many chunks come meanwhile. */
const holding = new WeakSet<Writable>();

/**
 * Writes `chunk` to a process's stdin `sink`; past STDIN_HIGH_WATER bytes waiting there,
 * holds its session's input (`hold`) until the process took them or can take none any
 * more. A sink that is gone takes nothing.
 */
export function writeStdin(sink: Writable | undefined, chunk: Buffer, hold: () => () => void): void {
  if (!sink || sink.destroyed) return;
  sink.write(chunk);
  if (sink.writableLength <= STDIN_HIGH_WATER || holding.has(sink)) return;
  holding.add(sink);
  const release = hold();
  const done = () => {
    holding.delete(sink);
    sink.off('drain', done);
    sink.off('close', done);
    release();
  };
  sink.on('drain', done);
  sink.on('close', done);
}
