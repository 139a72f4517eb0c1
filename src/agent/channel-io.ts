/** How the agent's processes meet their channels' windows: output pressure, stdin, and exits after output. */
import type { Writable } from 'node:stream';
import type { Channel } from '../protocol/channel.js';
import { onceWritable } from '../util/once-writable.js';
import type { OutputPressure } from './exec-common.js';

/**
 * Output bytes a channel may hold (beyond its window, then on the link) before the
 * processes writing to it wait (see pump). This bounds the agent's memory whatever a
 * host reader does, and a stalled reader stops only its own process.
 */
const OUTPUT_HIGH_WATER = 1 << 20;

/**
 * Writes input to a process's stdin. A process that does not read holds its channel, so
 * the host's writer waits instead of the agent buffering without bound.
 */
export function feed(stdin: Writable | undefined, d: Buffer, from?: Channel): void {
  if (!stdin || stdin.destroyed || stdin.write(d) || !from) return;
  onceWritable(stdin, from.hold());
}

/** Calls `then` once every one of `channels` has sent what it holds and its End. */
export function afterFlushed(channels: Channel[], then: () => void): void {
  let left = channels.length;
  for (const c of channels) c.onceFlushed(() => --left === 0 && then());
}

/** Output pressure from the channels a process writes to: their windows, then the link. */
export function channelsPressure(channels: Channel[]): OutputPressure {
  return {
    full: () => channels.some((c) => c.backlog > OUTPUT_HIGH_WATER),
    onceDrained: (cb) => {
      let left = channels.length;
      for (const c of channels) c.onceDrained(() => --left === 0 && cb());
    },
  };
}
