/**
 * Framing of the `fuse` guest channel: pure, no I/O. Each frame carries one whole FUSE
 * message of one volume, exactly as the guest kernel wrote or will read it, so the guest
 * relays bytes and the host does all decoding.
 *
 *   len     u32 LE  whole frame, header included
 *   volume  u16 LE  the volume's index
 *   kind    u16 LE  FrameKind
 *
 * The host accepts frames up to MAX_FRAME; anything else ends the channel.
 */
import { REQUEST_BUFFER_SIZE } from './abi.js';

export const FRAME_HEADER = 8;
export const MAX_FRAME = FRAME_HEADER + REQUEST_BUFFER_SIZE;

export enum FuseFrameKind {
  /** A FUSE request (guest to host), or a reply or notification (host to guest). */
  Message = 0,
  /** The host's first frame on a new session: the guest may (re)send its requests. */
  Hello = 1,
  /**
   * Host to guest only: a file's attributes as they are after the request whose reply
   * follows (a WRITE, or a change of a directory's names): nodeid u64, then a
   * fuse_attr_out. The guest relay answers the kernel's next GETATTR of that file from
   * it (assets/guest/fuse-relay/local.c).
   */
  Attr = 2,
  /**
   * Host to guest only: a directory that the MKDIR whose reply follows made, empty and
   * watched for host changes: nodeid u64, entry timeout u32 (seconds). The guest relay
   * then answers LOOKUPs of names it knows are not there (assets/guest/fuse-relay/absent.c).
   */
  Empty = 3,
}

export interface FuseFrame {
  volume: number;
  kind: FuseFrameKind;
  body: Buffer;
}

export function encodeFuseFrame(volume: number, kind: FuseFrameKind, body: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(volume, 4);
  out.writeUInt16LE(kind, 6);
  out.set(body, FRAME_HEADER);
  return out;
}

export class FrameError extends Error {
  override name = 'FrameError';
}

/** Incremental decoder: bytes in any chunking, whole frames out. */
export class FuseFrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrame = MAX_FRAME) {}

  push(chunk: Uint8Array): FuseFrame[] {
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.buffered += chunk.byteLength;
    const out: FuseFrame[] = [];
    while (this.buffered >= FRAME_HEADER) {
      if (this.chunks[0]!.length < FRAME_HEADER) this.chunks = [Buffer.concat(this.chunks)];
      const head = this.chunks[0]!;
      const len = head.readUInt32LE(0);
      if (len < FRAME_HEADER || len > this.maxFrame) throw new FrameError(`frame length ${len} out of range`);
      const kind = head.readUInt16LE(6);
      if (kind !== FuseFrameKind.Message && kind !== FuseFrameKind.Hello) throw new FrameError(`unknown frame kind ${kind}`);
      if (this.buffered < len) break;
      const all = this.chunks.length === 1 ? head : Buffer.concat(this.chunks);
      out.push({ volume: all.readUInt16LE(4), kind, body: all.subarray(FRAME_HEADER, len) });
      const rest = all.subarray(len);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
    return out;
  }

  reset(): void {
    this.chunks = [];
    this.buffered = 0;
  }
}
