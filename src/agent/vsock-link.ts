import type { Socket } from 'node:net';
import { listenOnFd } from '../os/fd-stream.js';
import { vsockOps } from '../os/vsock.js';
import { SESSION_SYNC, SyncScanner } from '../protocol/session-sync.js';
import { socketTransport, type Transport } from '../protocol/transport.js';

/** Starts listening on a port; each connection arrives as a stream. */
export type Listen = (port: number, onConnection: (s: Socket) => void) => { close(): void };

/** An AF_VSOCK listener on `port` of every CID. */
export const listenVsock: Listen = (port, onConnection) => listenOnFd(vsockOps().bind(port), 16, onConnection);

/**
 * The guest end of a channel over vsock (Firecracker): the agent listens on an AF_VSOCK
 * port and each host connection is a session. A snapshot makes Firecracker reset the
 * vsock transport, which drops open connections in the source and in every clone, but
 * not listening sockets: the next host simply connects again.
 *
 * Armed (for a snapshot), a new connection is a restored host's: it begins with
 * SESSION_SYNC, which is answered with SESSION_SYNC before the session starts, as on
 * virtio-serial (see session-sync.ts).
 */
export class VsockLink {
  private scanner = false;
  private readonly listener: { close(): void };

  constructor(
    readonly port: number,
    private readonly onSession: (t: Transport) => void,
    listen: Listen = listenVsock,
  ) {
    this.listener = listen(port, (s) => this.accept(s));
  }

  arm(): void {
    this.scanner = true;
  }

  disarm(): void {
    this.scanner = false;
  }

  stop(): void {
    this.listener.close();
  }

  private accept(sock: Socket): void {
    sock.on('error', () => {});
    if (!this.scanner) return this.onSession(socketTransport(sock));
    // Hold the bytes until SYNC; what comes after it is the new session's.
    const scan = new SyncScanner();
    const onData = (d: Buffer) => {
      const rest = scan.push(d);
      if (rest === undefined) return;
      sock.off('data', onData);
      sock.pause();
      this.scanner = false;
      sock.write(SESSION_SYNC);
      if (rest.length > 0) sock.unshift(rest);
      this.onSession(socketTransport(sock));
      sock.resume();
    };
    sock.on('data', onData);
  }
}
