/**
 * The guest's end of the `fuse` channel, below the relay: it carries frames (see
 * src/fuse/channel-frames.ts) to the host, writes the host's replies straight to the
 * volume's /dev/fuse descriptor, and reports what the relay must know. Two
 * implementations: the virtio-serial port in the guest (vport-link.ts, worker threads)
 * and any Transport (tests, and a future vsock socket).
 */
import { writeSync } from 'node:fs';
import { FuseFrameDecoder, FuseFrameKind } from '../fuse/channel-frames.js';
import type { Transport } from '../protocol/transport.js';

export interface LinkEvents {
  /** The host's first frame of a session: it is ready for requests. */
  hello(): void;
  /** Replies written to /dev/fuse, as [volume, unique] pairs. */
  answered(done: [number, bigint][]): void;
  /** A notification for `volume` (unique 0), to be written off the relay's thread. */
  notify(volume: number, body: Uint8Array): void;
  /** No host is connected any more. */
  hangup(): void;
  /** (Armed only) the host wrote SESSION_SYNC: a new session follows. */
  resync(): void;
}

export interface FrameLink {
  /** Raw bytes to the host: whole frames, or SESSION_SYNC. */
  send(bytes: Uint8Array): void;
  /** Where replies for `volume` go. */
  setVolumeFd(volume: number, fd: number): void;
  /** Until the next SESSION_SYNC, look for one (a snapshot is being taken). */
  arm(): void;
  disarm(): void;
  listen(events: LinkEvents): void;
  /**
   * Where worker threads may write whole frames themselves, taking `lock` (an Int32 in
   * shared memory: 0 free, 1 held) around each: the port's descriptor. Absent for links
   * whose bytes only this thread can send.
   */
  direct?: { fd: number; lock: Int32Array };
}

/** Writes a reply to /dev/fuse; ENOENT means the request was interrupted and is gone. */
export function writeReply(fd: number, body: Uint8Array): boolean {
  try {
    writeSync(fd, body);
    return true;
  } catch {
    return false;
  }
}

/**
 * A FrameLink over a Transport, decoding in this thread. `attach` starts a new session
 * on another transport (the old one's close is a hangup).
 */
export class TransportFrameLink implements FrameLink {
  private t: Transport | undefined;
  private events: LinkEvents | undefined;
  private readonly fds = new Map<number, number>();
  private readonly decoder = new FuseFrameDecoder();

  attach(t: Transport): void {
    this.t = t;
    this.decoder.reset();
    t.onData((chunk) => {
      if (this.t !== t) return;
      const done: [number, bigint][] = [];
      for (const f of this.decoder.push(chunk)) {
        if (f.kind === FuseFrameKind.Hello) {
          this.events?.hello();
          continue;
        }
        const fd = this.fds.get(f.volume);
        if (fd === undefined || f.body.length < 16) continue;
        const unique = f.body.readBigUInt64LE(8);
        if (unique === 0n) this.events?.notify(f.volume, Uint8Array.from(f.body));
        else {
          writeReply(fd, f.body);
          done.push([f.volume, unique]);
        }
      }
      if (done.length > 0) this.events?.answered(done);
    });
    t.onClose(() => {
      if (this.t !== t) return;
      this.t = undefined;
      this.events?.hangup();
    });
  }

  send(bytes: Uint8Array): void {
    this.t?.write(bytes);
  }

  setVolumeFd(volume: number, fd: number): void {
    this.fds.set(volume, fd);
  }

  arm(): void {}
  disarm(): void {}

  listen(events: LinkEvents): void {
    this.events = events;
  }
}
