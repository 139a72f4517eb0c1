import type { Socket } from 'node:net';
import { listenOnFd } from '../os/fd-stream.js';
import { vsockOps } from '../os/vsock.js';
import { ResumableListener } from '../protocol/resumable-link.js';
import { SESSION_SYNC, SyncScanner } from '../protocol/session-sync.js';
import { socketTransport, type Transport } from '../protocol/transport.js';

/** Starts listening on a port; each connection arrives as a stream. */
export type Listen = (port: number, onConnection: (s: Socket) => void) => { close(): void };

/** An AF_VSOCK listener on `port` of every CID. */
export const listenVsock: Listen = (port, onConnection) => listenOnFd(vsockOps().bind(port), 16, onConnection);

/**
 * The guest end of a channel over vsock (Firecracker). The agent listens on an AF_VSOCK
 * port; each host session is a resumable stream (protocol/resumable.ts) over one
 * connection after another: a snapshot makes Firecracker reset the vsock transport,
 * which drops open connections in the source too, and the source's host comes back
 * with the same session. A new session id is a new host, as after a restore.
 *
 * Armed (for a snapshot), a new session must begin with SESSION_SYNC, which is answered
 * with SESSION_SYNC before the session starts, as on virtio-serial (session-sync.ts).
 */
export class VsockLink {
  private armed = false;
  private readonly listener: { close(): void };
  private readonly sessions: ResumableListener;

  constructor(
    readonly port: number,
    private readonly onSession: (t: Transport) => void,
    listen: Listen = listenVsock,
  ) {
    this.sessions = new ResumableListener((t) => this.start(t));
    this.listener = listen(port, (s) => {
      s.on('error', () => {});
      void this.sessions.accept(socketTransport(s));
    });
  }

  arm(): void {
    this.armed = true;
  }

  disarm(): void {
    this.armed = false;
  }

  stop(): void {
    this.listener.close();
  }

  private start(t: Transport): void {
    if (!this.armed) return this.onSession(t);
    // Hold the bytes until SYNC; what comes after it is the new session's.
    const scan = new SyncScanner();
    let deliver: ((c: Uint8Array) => void) | undefined;
    let held: Uint8Array[] = [];
    let synced = false;
    t.onData((c) => {
      if (synced) return deliver ? deliver(c) : void held.push(c);
      const rest = scan.push(c);
      if (rest === undefined) return;
      synced = true;
      this.armed = false;
      t.write(SESSION_SYNC);
      if (rest.length > 0) held.push(rest);
      this.onSession({
        write: (d) => t.write(d),
        onData: (cb) => {
          deliver = cb;
          for (const h of held) cb(h);
          held = [];
        },
        onClose: (cb) => t.onClose(cb),
        close: () => t.close(),
      });
    });
  }
}
