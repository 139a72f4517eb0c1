/**
 * The FUSE message codec: pure, no I/O. Decoding validates everything, because the
 * requests come from the guest, which is hostile: every read is bounds-checked, names
 * are checked for length, NUL and '/', and a malformed request becomes a DecodeError
 * (answered with EINVAL or EPROTO), never an exception that escapes.
 */
import { E, IN_HEADER_SIZE, NAME_MAX, OUT_HEADER_SIZE, PATH_MAX } from './abi.js';

export class DecodeError extends Error {
  override name = 'DecodeError';
  constructor(message: string, readonly errno: number = E.EINVAL) {
    super(message);
  }
}

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

/** A bounds-checked little-endian reader over a request's argument bytes. */
export class ArgReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number): number {
    if (this.pos + n > this.buf.length) throw new DecodeError(`request too short (${n} bytes needed at ${this.pos} of ${this.buf.length})`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u32(): number {
    return this.buf.readUInt32LE(this.need(4));
  }

  i32(): number {
    return this.buf.readInt32LE(this.need(4));
  }

  u64(): bigint {
    return this.buf.readBigUInt64LE(this.need(8));
  }

  /** A u64 that must be a safe JS integer (file offsets, sizes); EINVAL beyond 2^53. */
  offset(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(`offset ${v} out of range`, E.EFBIG);
    return Number(v);
  }

  /** A signed 64-bit value as a number (times); clamped checks by the caller. */
  i64(): number {
    const v = this.buf.readBigInt64LE(this.need(8));
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(`value ${v} out of range`);
    return Number(v);
  }

  skip(n: number): void {
    this.need(n);
  }

  /** Exactly `n` bytes (a view, not a copy). */
  bytes(n: number): Buffer {
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }

  /** Everything left. */
  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  /** A NUL-terminated string (a view without the NUL), at most `max` bytes. */
  cstring(max: number): Buffer {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new DecodeError('string without NUL terminator');
    const s = this.buf.subarray(this.pos, end);
    if (s.length > max) throw new DecodeError(`string of ${s.length} bytes is too long`, E.ENAMETOOLONG);
    this.pos = end + 1;
    return s;
  }

  /** A directory entry name: 1..255 bytes, no '/', not "." or "..". Returned NUL-terminated for the *at() calls. */
  name(): Buffer {
    const s = this.cstring(NAME_MAX);
    checkName(s);
    return Buffer.concat([s, ZERO]);
  }

  /** A symlink target: 1..4095 bytes (any bytes but NUL). NUL-terminated. */
  linkTarget(): Buffer {
    const s = this.cstring(PATH_MAX - 1);
    if (s.length === 0) throw new DecodeError('empty symlink target', E.ENOENT);
    return Buffer.concat([s, ZERO]);
  }
}

const ZERO = Buffer.alloc(1);

/** Validates one path component (without NUL). */
export function checkName(s: Buffer): void {
  if (s.length === 0) throw new DecodeError('empty name', E.ENOENT);
  if (s.length > NAME_MAX) throw new DecodeError('name too long', E.ENAMETOOLONG);
  if (s.includes(0x2f)) throw new DecodeError('name contains "/"');
  if ((s.length === 1 && s[0] === 0x2e) || (s.length === 2 && s[0] === 0x2e && s[1] === 0x2e)) throw new DecodeError('name is "." or ".."');
}

/**
 * Splits one whole request into its header and argument bytes. The caller has already
 * framed it (its length is `buf.length`). Extensions (total_extlen) are cut off the end.
 */
export function decodeRequest(buf: Buffer): { header: InHeader; args: ArgReader } {
  if (buf.length < IN_HEADER_SIZE) throw new DecodeError(`request of ${buf.length} bytes is shorter than its header`, E.EPROTO);
  const len = buf.readUInt32LE(0);
  if (len !== buf.length) throw new DecodeError(`request says ${len} bytes but has ${buf.length}`, E.EPROTO);
  const extlen = buf.readUInt16LE(36) * 8;
  if (IN_HEADER_SIZE + extlen > len) throw new DecodeError('extension length exceeds the request', E.EPROTO);
  const header: InHeader = {
    len,
    opcode: buf.readUInt32LE(4),
    unique: buf.readBigUInt64LE(8),
    nodeid: buf.readBigUInt64LE(16),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
  };
  return { header, args: new ArgReader(buf.subarray(IN_HEADER_SIZE, len - extlen)) };
}

/** An out header followed by `body` (one Buffer, ready to write). */
export function encodeReply(unique: bigint, error: number, body?: Buffer | Buffer[]): Buffer {
  const parts = body === undefined ? [] : Array.isArray(body) ? body : [body];
  let len = OUT_HEADER_SIZE;
  for (const p of parts) len += p.length;
  const out = Buffer.allocUnsafe(len);
  out.writeUInt32LE(len, 0);
  out.writeInt32LE(error === 0 ? 0 : -Math.abs(error), 4);
  out.writeBigUInt64LE(unique, 8);
  let at = OUT_HEADER_SIZE;
  for (const p of parts) {
    p.copy(out, at);
    at += p.length;
  }
  return out;
}

/**
 * A reply as parts to write one after the other: its out header, then the body's own
 * buffers, uncopied (a 1 MiB read goes out as it was read).
 */
export function replyParts(unique: bigint, error: number, body?: Buffer | Buffer[]): Buffer[] {
  const parts = body === undefined ? [] : Array.isArray(body) ? body : [body];
  let len = OUT_HEADER_SIZE;
  for (const p of parts) len += p.length;
  const head = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  head.writeUInt32LE(len, 0);
  head.writeInt32LE(error === 0 ? 0 : -Math.abs(error), 4);
  head.writeBigUInt64LE(unique, 8);
  return [head, ...parts];
}

/** An unsolicited notification: unique 0, the notify code in the error field. */
export function encodeNotify(code: number, body: Buffer): Buffer {
  const out = encodeReply(0n, 0, body);
  out.writeInt32LE(code, 4);
  return out;
}

/** A little-endian writer into a fixed-size Buffer. */
export class OutWriter {
  readonly buf: Buffer;
  private pos = 0;
  constructor(size: number) {
    this.buf = Buffer.alloc(size);
  }
  u32(v: number): this {
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }
  u16(v: number): this {
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
    return this;
  }
  u64(v: bigint | number): this {
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), this.pos);
    this.pos += 8;
    return this;
  }
  i64(v: bigint | number): this {
    this.buf.writeBigInt64LE(BigInt.asIntN(64, BigInt(v)), this.pos);
    this.pos += 8;
    return this;
  }
  bytes(b: Buffer): this {
    b.copy(this.buf, this.pos);
    this.pos += b.length;
    return this;
  }
  skip(n: number): this {
    this.pos += n;
    return this;
  }
}
