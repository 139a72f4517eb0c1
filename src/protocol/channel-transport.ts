import type { Channel } from './channel.js';
import type { Transport } from './transport.js';

/**
 * A Transport over one channel of a Connection, so a whole nested session (handshake,
 * requests, its own channels) can ride inside it. Closing sends End on the channel.
 * `link`, the Connection carrying it: what it has not sent yet is this transport's
 * backlog too (a nested session's writers wait on the link, see the agent's pump).
 */
export function channelTransport(ch: Channel, link?: { readonly backlog: number; onceDrained(cb: () => void): void }): Transport {
  let closed = false;
  let onClose: ((e?: Error) => void) | undefined;
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
    ...(link ? { backlog: () => link.backlog, onceDrained: (cb: () => void) => link.onceDrained(cb) } : {}),
  };
}
