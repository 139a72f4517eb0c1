/**
 * The frame codec of the host-guest protocol: pure, no I/O.
 *
 * Frame layout (big-endian), 12-byte header then payload:
 *   magic   u16  0x4656 ("FV")
 *   version u8   PROTOCOL_VERSION
 *   kind    u8   FrameKind
 *   channel u32  0 for control messages, otherwise a stream channel
 *   length  u32  payload bytes, at most MAX_PAYLOAD
 */
export const MAGIC = 0x4656;
export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 12;
export const MAX_PAYLOAD = 1 << 20;

export enum FrameKind {
  /** A JSON control message (see messages.ts) on channel 0. */
  Message = 1,
  /** Raw bytes of a stream channel. */
  Data = 2,
  /** End of a stream channel (EOF) in the sender's direction. */
  End = 3,
  /** The receiver of a stream channel allows the sender u32 more bytes (see channel.ts). */
  Credit = 4,
}

export interface Frame {
  kind: FrameKind;
  channel: number;
  payload: Uint8Array;
}

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export function encodeFrame(frame: Frame): Buffer {
  if (frame.payload.length > MAX_PAYLOAD) {
    throw new ProtocolError(`payload of ${frame.payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  }
  if (!Number.isInteger(frame.channel) || frame.channel < 0 || frame.channel > 0xffffffff) {
    throw new ProtocolError(`invalid channel ${frame.channel}`);
  }
  const buf = Buffer.allocUnsafe(HEADER_SIZE + frame.payload.length);
  buf.writeUInt16BE(MAGIC, 0);
  buf.writeUInt8(PROTOCOL_VERSION, 2);
  buf.writeUInt8(frame.kind, 3);
  buf.writeUInt32BE(frame.channel, 4);
  buf.writeUInt32BE(frame.payload.length, 8);
  buf.set(frame.payload, HEADER_SIZE);
  return buf;
}

/** Encodes a control message frame. */
export function encodeMessage(message: unknown): Buffer {
  return encodeFrame({ kind: FrameKind.Message, channel: 0, payload: Buffer.from(JSON.stringify(message)) });
}

/**
 * Incremental decoder: push bytes in any chunking, get whole frames out. A malformed
 * header throws ProtocolError and leaves the decoder unusable until `reset()`.
 *
 * Each byte is copied once: the header into a fixed buffer, the payload into a buffer
 * of exactly its announced size. So a peer that sends one byte at a time costs no more
 * than one that sends whole frames, and what is held is at most one frame.
 */
export class FrameDecoder {
  private readonly head = Buffer.alloc(HEADER_SIZE);
  private headFill = 0;
  private payload: Buffer | undefined;
  private payloadFill = 0;
  private failed: ProtocolError | undefined;

  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw this.failed;
    const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const frames: Frame[] = [];
    let off = 0;
    while (off < data.length || (this.payload && this.payloadFill === this.payload.length)) {
      if (!this.payload) {
        const n = Math.min(HEADER_SIZE - this.headFill, data.length - off);
        data.copy(this.head, this.headFill, off, off + n);
        this.headFill += n;
        off += n;
        if (this.headFill < HEADER_SIZE) break;
        const err = validateHeader(this.head);
        if (err) {
          this.failed = new ProtocolError(err);
          throw this.failed;
        }
        this.payload = Buffer.allocUnsafe(this.head.readUInt32BE(8));
        this.payloadFill = 0;
      }
      const n = Math.min(this.payload.length - this.payloadFill, data.length - off);
      data.copy(this.payload, this.payloadFill, off, off + n);
      this.payloadFill += n;
      off += n;
      if (this.payloadFill < this.payload.length) break;
      frames.push({ kind: this.head.readUInt8(3) as FrameKind, channel: this.head.readUInt32BE(4), payload: this.payload });
      this.payload = undefined;
      this.payloadFill = 0;
      this.headFill = 0;
    }
    return frames;
  }

  /** Bytes held that do not form a whole frame yet. */
  get pending(): number {
    return this.headFill + this.payloadFill;
  }

  reset(): void {
    this.headFill = 0;
    this.payload = undefined;
    this.payloadFill = 0;
    this.failed = undefined;
  }
}

function validateHeader(head: Buffer): string | undefined {
  const magic = head.readUInt16BE(0);
  if (magic !== MAGIC) return `bad magic 0x${magic.toString(16).padStart(4, '0')}`;
  const version = head.readUInt8(2);
  if (version !== PROTOCOL_VERSION) return `unsupported frame version ${version}`;
  const kind = head.readUInt8(3);
  if (!(kind in FrameKind) || kind === 0) return `unknown frame kind ${kind}`;
  const channel = head.readUInt32BE(4);
  if (kind === FrameKind.Message && channel !== 0) return `message frame on channel ${channel}`;
  if (kind !== FrameKind.Message && channel === 0) return 'stream frame on channel 0';
  const length = head.readUInt32BE(8);
  if (length > MAX_PAYLOAD) return `frame length ${length} exceeds ${MAX_PAYLOAD}`;
  return undefined;
}

/** Parses a Message frame's JSON payload. */
export function decodeMessage(frame: Frame): unknown {
  try {
    return JSON.parse(Buffer.from(frame.payload).toString('utf8'));
  } catch (e) {
    throw new ProtocolError(`message is not valid JSON: ${(e as Error).message}`);
  }
}
