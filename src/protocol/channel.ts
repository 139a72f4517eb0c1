/**
 * A byte channel multiplexed over a Connection: Data frames carry its bytes, an End
 * frame ends one direction. The connection routes frames from the peer to it; the
 * channel sends its own through the connection.
 *
 * Flow control (feature "window", when both sides have it): each direction of a
 * channel has a window of CHANNEL_WINDOW bytes. A sender sends no more than the
 * receiver has allowed; the receiver allows more (a Credit frame) as its consumer takes
 * the bytes. A consumer that cannot keep up holds its channel (`hold()`), and only that
 * channel waits: the link, and the VM's other sessions on it, go on. Bytes a sender may
 * not send yet wait in the channel (`backlog`), and its writers wait for `onceDrained`.
 * With a peer that lacks the feature, a hold stops reading the whole link instead.
 */
import { EventEmitter } from 'node:events';
import { FrameKind, ProtocolError, type Frame } from './codec.js';

/** The hello feature both sides name to keep per-channel windows. */
export const FEATURE_WINDOW = 'window';
/** What a channel holds for a listener that has not come yet. */
const HELD_MAX = 1 << 20;
/** Bytes one direction of a channel may have in flight, unconsumed by the receiver. */
export const CHANNEL_WINDOW = 1024 * 1024;
/** The receiver gives credit back once this much was consumed, not per frame. */
const CREDIT_STEP = CHANNEL_WINDOW / 4;
/** Largest Data frame payload a channel sends. */
const FRAME_BYTES = 65536;

/** Where a channel's frames go: its connection. */
export interface FrameSink {
  sendFrame(frame: Frame): void;
  /** Whether both sides keep per-channel windows: undefined until the peer's hello. */
  readonly windows: boolean | undefined;
  /** Stops reading the whole link until released (for a peer without windows). */
  holdInput(): () => void;
  /** What the link under the channels has not handed to the peer yet, and a call once it has. */
  readonly backlog: number;
  onceDrained(cb: () => void): void;
}

/**
 * One direction-agnostic stream channel: Data frames in, Data frames out, End for EOF.
 * Bytes (and the end) that arrive before anyone listens are held, up to HELD_MAX bytes,
 * and delivered to the first listener: a restored guest's container writes to its
 * channels before the new host has learnt their ids.
 */
export class Channel extends EventEmitter<{ data: [Buffer]; end: []; newListener: [event: string | symbol, listener: unknown] }> {
  ended = false;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private endHeld = false;
  // Sending: what the peer allows in all, what was sent, and what waits for more allowance.
  private sendLimit = CHANNEL_WINDOW;
  private sent = 0;
  private queue: Buffer[] = [];
  private queued = 0;
  private endQueued = false;
  private drainWaiters: (() => void)[] = [];
  private closed = false;
  // Receiving: what this side allowed in all, what came, what was consumed and not yet given back.
  private allowed = CHANNEL_WINDOW;
  private received = 0;
  private owed = 0;
  private holds = 0;

  constructor(
    readonly id: number,
    private readonly conn: FrameSink,
    /** Bytes held by all channels of the connection, and the most they may hold. */
    private readonly budget: { used: number; max: number },
  ) {
    super();
    this.on('newListener', (event: string | symbol) => {
      if (event === 'data' || event === 'end') queueMicrotask(() => this.release());
    });
  }

  write(data: Uint8Array): void {
    if (this.closed || this.sentEnd || data.length === 0) return;
    this.queue.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    this.queued += data.length;
    this.flush();
  }

  /** Bytes written and not yet handed to the peer: waiting for its allowance, or on the link. */
  get backlog(): number {
    return this.queued + this.conn.backlog;
  }

  /** Calls `cb` once the backlog has gone (or the connection closed). */
  onceDrained(cb: () => void): void {
    if (this.closed || this.queued === 0) this.conn.onceDrained(cb);
    else this.drainWaiters.push(() => this.conn.onceDrained(cb));
  }

  /**
   * Calls `cb` once everything written, and the End if asked for, has gone to the link
   * (or the connection closed). A message sent after that follows the bytes: an exit
   * must not overtake output that waited for the reader's window.
   */
  onceFlushed(cb: () => void): void {
    if (this.closed || this.queued === 0) queueMicrotask(cb);
    else this.drainWaiters.push(cb);
  }

  /** True once this side sent End (its direction is over). */
  get endSent(): boolean {
    return this.sentEnd;
  }
  private sentEnd = false;
  /** Ends this side's direction, after what waits to be sent; once only. */
  end(): void {
    if (this.sentEnd) return;
    this.sentEnd = true;
    this.endQueued = true;
    this.flush();
  }

  /**
   * Stops giving the peer allowance for this channel until the returned function is
   * called: its consumer is slower than the peer. At most a window more arrives meanwhile.
   */
  hold(): () => void {
    if (this.conn.windows !== true) return this.conn.holdInput();
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.giveCredit();
    };
  }

  /** @internal A Data frame arrived. A peer past the allowance it was given broke the protocol. */
  deliver(data: Buffer): void {
    this.received += data.length;
    if (this.conn.windows !== false && this.received > this.allowed) {
      throw new ProtocolError(`the peer sent ${this.received - this.allowed} bytes past its window on channel ${this.id}`);
    }
    if (this.listenerCount('data') > 0 && this.held.length === 0) {
      this.emit('data', data);
      this.consumed(data.length);
      return;
    }
    // Past either limit the bytes are dropped: nobody asked for them yet.
    if (this.heldBytes + data.length > HELD_MAX || this.budget.used + data.length > this.budget.max) return this.consumed(data.length);
    this.held.push(data);
    this.heldBytes += data.length;
    this.budget.used += data.length;
  }

  /** @internal The peer allows `bytes` more. */
  credit(bytes: number): void {
    this.sendLimit += bytes;
    this.flush();
  }

  /** @internal The peer's hello came: whether it keeps windows is known now. */
  peerKnown(): void {
    this.flush();
    this.giveCredit();
  }

  /** @internal The channel was released: what it held goes back to the budget, what it would send is dropped. */
  drop(): void {
    this.budget.used -= this.heldBytes;
    this.heldBytes = 0;
    this.held = [];
    this.abandon();
  }

  /** @internal The peer ended its direction, or the connection closed. */
  finish(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.listenerCount('end') > 0 && this.held.length === 0) this.emit('end');
    else this.endHeld = true;
  }

  /** @internal The connection closed: nothing more goes out, and writers waiting for a drain go on. */
  abandon(): void {
    this.closed = true;
    this.queue = [];
    this.queued = 0;
    for (const cb of this.drainWaiters.splice(0)) cb();
  }

  private flush(): void {
    const windows = this.conn.windows;
    while (this.queue.length > 0 && !this.closed) {
      const room = windows === false ? Number.POSITIVE_INFINITY : this.sendLimit - this.sent;
      if (room <= 0) return;
      const head = this.queue[0]!;
      const n = Math.min(room, head.length, FRAME_BYTES);
      this.conn.sendFrame({ kind: FrameKind.Data, channel: this.id, payload: head.subarray(0, n) });
      this.sent += n;
      this.queued -= n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
    }
    if (this.closed) return;
    if (this.endQueued) {
      this.endQueued = false;
      this.conn.sendFrame({ kind: FrameKind.End, channel: this.id, payload: new Uint8Array(0) });
    }
    for (const cb of this.drainWaiters.splice(0)) cb();
  }

  private consumed(bytes: number): void {
    this.owed += bytes;
    this.giveCredit();
  }

  private giveCredit(): void {
    if (this.holds > 0 || this.owed < CREDIT_STEP || this.conn.windows !== true || this.closed) return;
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(this.owed, 0);
    this.allowed += this.owed;
    this.owed = 0;
    this.conn.sendFrame({ kind: FrameKind.Credit, channel: this.id, payload });
  }

  private release(): void {
    if (this.listenerCount('data') > 0) {
      this.budget.used -= this.heldBytes;
      const released = this.heldBytes;
      this.heldBytes = 0;
      for (const d of this.held.splice(0)) this.emit('data', d);
      this.consumed(released);
    }
    if (this.endHeld && this.held.length === 0 && this.listenerCount('end') > 0) {
      this.endHeld = false;
      this.emit('end');
    }
  }
}
