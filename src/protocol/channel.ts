/**
 * A byte channel multiplexed over a Connection: Data frames carry its bytes, an End
 * frame ends one direction. The connection routes frames from the peer to it; the
 * channel sends its own through the connection.
 */
import { EventEmitter } from 'node:events';
import { FrameKind, type Frame } from './codec.js';

/** What a channel holds for a listener that has not come yet. */
const HELD_MAX = 1 << 20;

/** Where a channel's frames go: its connection. */
export interface FrameSink {
  sendFrame(frame: Frame): void;
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
    for (let off = 0; off < data.length; off += 65536) {
      this.conn.sendFrame({ kind: FrameKind.Data, channel: this.id, payload: data.subarray(off, off + 65536) });
    }
  }
  /** True once this side sent End (its direction is over). */
  get endSent(): boolean {
    return this.sentEnd;
  }
  private sentEnd = false;
  /** Ends this side's direction; once only. */
  end(): void {
    if (this.sentEnd) return;
    this.sentEnd = true;
    this.conn.sendFrame({ kind: FrameKind.End, channel: this.id, payload: new Uint8Array(0) });
  }
  /** @internal A Data frame arrived. */
  deliver(data: Buffer): void {
    if (this.listenerCount('data') > 0 && this.held.length === 0) return void this.emit('data', data);
    // Past either limit the bytes are dropped: nobody asked for them yet.
    if (this.heldBytes + data.length > HELD_MAX || this.budget.used + data.length > this.budget.max) return;
    this.held.push(data);
    this.heldBytes += data.length;
    this.budget.used += data.length;
  }
  /** @internal The channel was released: what it held goes back to the budget. */
  drop(): void {
    this.budget.used -= this.heldBytes;
    this.heldBytes = 0;
    this.held = [];
  }
  /** @internal The peer ended its direction, or the connection closed. */
  finish(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.listenerCount('end') > 0 && this.held.length === 0) this.emit('end');
    else this.endHeld = true;
  }
  private release(): void {
    if (this.listenerCount('data') > 0) {
      this.budget.used -= this.heldBytes;
      this.heldBytes = 0;
      for (const d of this.held.splice(0)) this.emit('data', d);
    }
    if (this.endHeld && this.held.length === 0 && this.listenerCount('end') > 0) {
      this.endHeld = false;
      this.emit('end');
    }
  }
}
