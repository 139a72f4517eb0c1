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
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: ProtocolError | undefined;

  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw this.failed;
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.buffered += chunk.byteLength;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < HEADER_SIZE) break;
      const head = this.peek(HEADER_SIZE);
      const err = validateHeader(head);
      if (err) {
        this.failed = new ProtocolError(err);
        throw this.failed;
      }
      const length = head.readUInt32BE(8);
      if (this.buffered < HEADER_SIZE + length) break;
      const whole = this.take(HEADER_SIZE + length);
      frames.push({
        kind: whole.readUInt8(3) as FrameKind,
        channel: whole.readUInt32BE(4),
        payload: whole.subarray(HEADER_SIZE),
      });
    }
    return frames;
  }

  /** Bytes held that do not form a whole frame yet. */
  get pending(): number {
    return this.buffered;
  }

  reset(): void {
    this.chunks = [];
    this.buffered = 0;
    this.failed = undefined;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
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
