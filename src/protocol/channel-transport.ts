import type { Channel } from './channel.js';
import type { Transport } from './transport.js';

/**
 * A Transport over one channel of a Connection, so a whole nested session (handshake,
 * requests, its own channels) can ride inside it. Closing sends End on the channel.
 * What the channel has not sent yet (its window, then the link) is this transport's
 * backlog: a nested session's writers wait on it (see the agent's pump).
 */
export function channelTransport(ch: Channel): Transport {
  let closed = false;
  let onClose: ((e?: Error) => void) | undefined;
  let hold: (() => void) | undefined;
  const close = () => {
    if (closed) return;
    closed = true;
    onClose?.();
  };
  ch.on('end', close);
  return {
    write: (data) => {
      if (!closed) ch.write(data);
    },
    onData: (cb) => ch.on('data', cb),
    onClose: (cb) => (onClose = cb),
    close: () => {
      if (closed) return;
      ch.end();
      close();
    },
    backlog: () => ch.backlog,
    onceDrained: (cb: () => void) => ch.onceDrained(cb),
    // A nested session that holds its input holds this channel (not the whole link).
    pause: () => void (hold ??= ch.hold()),
    resume: () => {
      hold?.();
      hold = undefined;
    },
  };
}
