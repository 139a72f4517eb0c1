import type { Channel } from './channel.js';
import type { Transport } from './transport.js';

/**
 * A Transport over one channel of a Connection, so a whole nested session (handshake,
 * requests, its own channels) can ride inside it. Closing sends End on the channel.
 */
export function channelTransport(ch: Channel): Transport {
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
  };
}
