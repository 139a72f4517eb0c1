import { randomBytes } from 'node:crypto';
import type { Transport } from './transport.js';

/**
 * A byte stream that survives the loss of the link under it: Firecracker resets the
 * vsock transport at every snapshot, which drops open connections in the running
 * source VM too. Each side numbers the bytes it sends, acknowledges what it received,
 * and keeps what the peer has not acknowledged; on a new link, the two exchange how
 * much they received and resend the rest, so the session above (a Connection) never
 * notices. A link that brings an unknown session id starts a new session: that is
 * how a restored clone's new host is told apart from its source's host coming back.
 *
 * On the wire: a hello each way ("FCRS", version, flags, 16-byte session id, bytes
 * received), then frames [kind u8][length u32 LE][payload]: DATA, or ACK carrying the
 * count of bytes received (u64 LE).
 */
export const RESUMABLE_MAGIC = Buffer.from('FCRS');
const VERSION = 1;
const HELLO_SIZE = 4 + 1 + 1 + 16 + 8;
/** Hello flag, in the guest's answer: the session was resumed, not started anew. */
export const FLAG_RESUMED = 1;
/** Hello flag, in the host's first hello: a new session, not a resume. */
export const FLAG_NEW = 2;
const DATA = 1;
const ACK = 2;
const HEADER = 5;
/** Largest frame payload accepted: a bad peer cannot make us buffer without bound. */
const MAX_FRAME = 1 << 20;
/** Acknowledge at least every this many bytes, or after this long idle. */
const ACK_BYTES = 64 * 1024;
const ACK_MS = 20;

export interface Hello {
  sessionId: Buffer;
  received: number;
  flags: number;
}

export function encodeHello(h: Hello): Buffer {
  const b = Buffer.alloc(HELLO_SIZE);
  RESUMABLE_MAGIC.copy(b, 0);
  b[4] = VERSION;
  b[5] = h.flags;
  h.sessionId.copy(b, 6, 0, 16);
  b.writeBigUInt64LE(BigInt(h.received), 22);
  return b;
}

/** Parses a hello at the start of `buf`: the hello and what follows, undefined if incomplete; throws if it is not one. */
export function decodeHello(buf: Buffer): { hello: Hello; rest: Buffer } | undefined {
  if (buf.length < HELLO_SIZE) {
    if (!RESUMABLE_MAGIC.subarray(0, Math.min(4, buf.length)).equals(buf.subarray(0, Math.min(4, buf.length)))) throw new Error('not a resumable-stream hello');
    return undefined;
  }
  if (!buf.subarray(0, 4).equals(RESUMABLE_MAGIC)) throw new Error('not a resumable-stream hello');
  if (buf[4] !== VERSION) throw new Error(`resumable-stream version ${buf[4]}, this side speaks ${VERSION}`);
  return {
    hello: { flags: buf[5]!, sessionId: Buffer.from(buf.subarray(6, 22)), received: Number(buf.readBigUInt64LE(22)) },
    rest: buf.subarray(HELLO_SIZE),
  };
}

const frame = (kind: number, payload: Uint8Array) => {
  const h = Buffer.alloc(HEADER);
  h[0] = kind;
  h.writeUInt32LE(payload.length, 1);
  return Buffer.concat([h, payload]);
};

const ackFrame = (n: number) => {
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(BigInt(n));
  return frame(ACK, p);
};

export interface ResumableOptions {
  /** Unacknowledged bytes allowed before the session is given up (the peer is gone for good). */
  maxUnacked?: number;
  /** Called when the current link is lost and the session waits for another. */
  onLinkLost?: () => void;
}

/**
 * One side of a resumable session. `transport` is what the layer above uses; links come
 * and go through `attach`, each after the hellos were exchanged.
 */
export class ResumableSession {
  readonly sessionId: Buffer;
  /** Bytes of DATA sent, in total. */
  private sent = 0;
  /** Bytes the peer acknowledged. */
  private acked = 0;
  /** What was sent and not acknowledged, oldest first; covers [acked, sent). */
  private unacked: Buffer[] = [];
  private unackedBytes = 0;
  /** Bytes of DATA received, in total, and how many of them were acknowledged. */
  private received = 0;
  private ackSent = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  private link: Transport | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private deliver: ((c: Uint8Array) => void) | undefined;
  private held: Buffer[] = [];
  private closeCb: ((e?: Error) => void) | undefined;
  private closed = false;
  readonly transport: Transport;

  constructor(sessionId: Buffer = randomBytes(16), private readonly opts: ResumableOptions = {}) {
    this.sessionId = sessionId;
    this.transport = {
      write: (d) => this.write(d),
      onData: (cb) => {
        this.deliver = cb;
        for (const c of this.held.splice(0)) cb(c);
      },
      onClose: (cb) => (this.closeCb = cb),
      close: () => this.close(),
    };
  }

  /** How much this side has received: what its hello tells the peer. */
  get receivedBytes(): number {
    return this.received;
  }

  /**
   * Carries the session over `link` from now on, the hellos done: `peerReceived` is how
   * much the peer had, and `rest` what came on the link behind its hello.
   */
  attach(link: Transport, peerReceived: number, rest: Buffer = Buffer.alloc(0)): void {
    if (this.closed) return void link.close();
    if (peerReceived < this.acked || peerReceived > this.sent) {
      link.close();
      return this.fail(new Error(`the peer says it received ${peerReceived} bytes, but ${this.acked} to ${this.sent} are possible`));
    }
    this.detach();
    this.link = link;
    this.buf = Buffer.alloc(0);
    // Our hello told the peer how much we received: that much is acknowledged.
    this.ackSent = this.received;
    this.ackUpTo(peerReceived);
    // Resend what the peer never got, then go on.
    if (this.unackedBytes > 0) link.write(frame(DATA, Buffer.concat(this.unacked)));
    link.onData((c) => this.onBytes(Buffer.from(c)));
    link.onClose(() => {
      if (this.link !== link) return;
      this.link = undefined;
      if (!this.closed) this.opts.onLinkLost?.();
    });
    if (rest.length > 0) this.onBytes(rest);
  }

  private detach(): void {
    const old = this.link;
    this.link = undefined;
    old?.close();
  }

  private write(d: Uint8Array): void {
    if (this.closed) return;
    const copy = Buffer.from(d);
    this.unacked.push(copy);
    this.unackedBytes += copy.length;
    this.sent += copy.length;
    if (this.unackedBytes > (this.opts.maxUnacked ?? 64 << 20)) return this.fail(new Error('the peer acknowledges nothing: the session is given up'));
    this.link?.write(frame(DATA, copy));
  }

  private onBytes(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= HEADER) {
      const kind = this.buf[0];
      const len = this.buf.readUInt32LE(1);
      if ((kind !== DATA && kind !== ACK) || len > MAX_FRAME || (kind === ACK && len !== 8)) return this.fail(new Error(`bad resumable-stream frame (kind ${kind}, ${len} bytes)`));
      if (this.buf.length < HEADER + len) return;
      const payload = this.buf.subarray(HEADER, HEADER + len);
      this.buf = this.buf.subarray(HEADER + len);
      if (kind === ACK) {
        const n = Number(payload.readBigUInt64LE(0));
        if (n < this.acked || n > this.sent) return this.fail(new Error(`the peer acknowledged ${n} bytes of ${this.sent}`));
        this.ackUpTo(n);
      } else {
        this.received += payload.length;
        const data = Buffer.from(payload);
        if (this.deliver) this.deliver(data);
        else this.held.push(data);
        this.scheduleAck();
      }
    }
  }

  private ackUpTo(n: number): void {
    let drop = n - this.acked;
    this.acked = n;
    while (drop > 0 && this.unacked.length > 0) {
      const first = this.unacked[0]!;
      if (first.length <= drop) {
        this.unacked.shift();
        this.unackedBytes -= first.length;
        drop -= first.length;
      } else {
        this.unacked[0] = first.subarray(drop);
        this.unackedBytes -= drop;
        drop = 0;
      }
    }
  }

  private scheduleAck(): void {
    if (this.received - this.ackSent >= ACK_BYTES) return this.sendAck();
    if (!this.ackTimer) {
      this.ackTimer = setTimeout(() => this.sendAck(), ACK_MS);
      this.ackTimer.unref();
    }
  }

  private sendAck(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    if (!this.link || this.ackSent === this.received) return;
    this.ackSent = this.received;
    this.link.write(ackFrame(this.received));
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.ackTimer);
    this.detach();
    this.closeCb?.(e);
  }

  /** Ends the session for good (the layer above is done with it). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.ackTimer);
    this.detach();
    this.closeCb?.();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
