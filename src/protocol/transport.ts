import type { Socket } from 'node:net';

/**
 * A byte pipe under a Connection. Implementations: a Unix socket (host side of
 * virtio-serial or Firecracker's hybrid vsock), a character device (the guest's
 * virtio-serial port), and an in-memory pair for tests.
 */
export interface Transport {
  write(data: Uint8Array): void;
  /** Called with each chunk received. Only one listener. */
  onData(cb: (chunk: Uint8Array) => void): void;
  /** Called once when the pipe closes, with the cause if it failed. */
  onClose(cb: (err?: Error) => void): void;
  close(): void;
  /** Bytes written but not yet taken by the peer (what this side holds for it). */
  backlog?(): number;
  /** Calls `cb` once, when the backlog has been taken. */
  onceDrained?(cb: () => void): void;
  /** Stops and restarts delivering incoming data (backpressure towards the peer). */
  pause?(): void;
  resume?(): void;
}

/** A Transport over a connected stream socket. */
export function socketTransport(sock: Socket): Transport {
  let closed = false;
  return {
    write: (data) => {
      if (!closed) sock.write(data);
    },
    onData: (cb) => sock.on('data', cb),
    onClose: (cb) => {
      let err: Error | undefined;
      sock.on('error', (e) => (err = e));
      sock.on('close', () => {
        closed = true;
        cb(err);
      });
    },
    close: () => {
      closed = true;
      sock.destroy();
    },
    backlog: () => sock.writableLength,
    onceDrained: (cb) => (sock.writableLength === 0 ? queueMicrotask(cb) : sock.once('drain', cb)),
    pause: () => sock.pause(),
    resume: () => sock.resume(),
  };
}

/** Two connected in-memory transports, for tests. Delivery is asynchronous, like a socket. */
export function memoryTransportPair(): [Transport, Transport] {
  const make = () => ({
    data: undefined as ((c: Uint8Array) => void) | undefined,
    close: undefined as ((e?: Error) => void) | undefined,
    closed: false,
  });
  const a = make();
  const b = make();
  const side = (me: ReturnType<typeof make>, peer: ReturnType<typeof make>): Transport => ({
    write: (data) => {
      if (me.closed) return;
      const copy = Uint8Array.from(data);
      queueMicrotask(() => peer.data?.(copy));
    },
    onData: (cb) => (me.data = cb),
    onClose: (cb) => (me.close = cb),
    close: () => {
      for (const s of [me, peer]) {
        if (s.closed) continue;
        s.closed = true;
        const cb = s.close;
        setImmediate(() => cb?.());
      }
    },
  });
  return [side(a, b), side(b, a)];
}
