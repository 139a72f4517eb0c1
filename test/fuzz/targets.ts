import { decodeMessage, encodeFrame, FrameDecoder, FrameKind, HEADER_SIZE, MAGIC, MAX_PAYLOAD, PROTOCOL_VERSION, ProtocolError } from '../../src/protocol/codec.js';
import { Connection, ConnectionClosedError, HOST_LIMITS } from '../../src/protocol/connection.js';
import { MessageSchema } from '../../src/protocol/messages.js';
import { resyncingTransport, SESSION_SYNC } from '../../src/protocol/session-sync.js';
import type { Transport } from '../../src/protocol/transport.js';
import type { FuzzTarget } from './engine.js';
import { fuseFuzzTarget } from './fuse-target.js';

/**
 * How a fuzz input becomes bytes on the wire. Byte 0: bit 0 picks raw (the rest as it
 * is) or framed (records of kind, channel, length and payload, given a correct header,
 * so mutations explore what frames carry rather than only their headers); bits 1-7 pick
 * the chunk size the bytes arrive in.
 */
export function wireOf(input: Buffer): { bytes: Buffer; chunk: number } {
  const mode = input[0] ?? 0;
  const chunk = [1, 2, 3, 7, 12, 13, 64, 4096][(mode >> 1) % 8]!;
  const rest = input.subarray(1);
  if ((mode & 1) === 0) return { bytes: rest, chunk };
  const frames: Buffer[] = [];
  let i = 0;
  while (i + 3 <= rest.length) {
    const k = rest[i]!;
    const kind = k < 240 ? 1 + (k % 3) : k % 8; // now and then an invalid kind
    const channel = kind === FrameKind.Message && k < 200 ? 0 : rest[i + 1]!;
    const len = rest.readUInt16BE(i + 1) % 2048;
    const payload = rest.subarray(i + 3, i + 3 + len);
    const h = Buffer.alloc(HEADER_SIZE);
    h.writeUInt16BE(MAGIC, 0);
    h.writeUInt8(PROTOCOL_VERSION, 2);
    h.writeUInt8(kind, 3);
    h.writeUInt32BE(channel, 4);
    h.writeUInt32BE(payload.length, 8);
    frames.push(h, payload);
    i += 3 + len;
  }
  return { bytes: Buffer.concat(frames), chunk };
}

const json = (o: unknown) => Buffer.from(JSON.stringify(o));
export const DICTIONARY = [
  Buffer.from([0x46, 0x56, 0x01, 0x01, 0, 0, 0, 0]), Buffer.from([0x46, 0x56, 0x01, 0x02, 0, 0, 0, 1]), Buffer.from([0x46, 0x56, 0x01, 0x03, 0, 0, 0, 2]),
  Buffer.from([0x46, 0x56, 0x01, 0x04, 0, 0, 0, 1, 0, 0, 0, 4]),
  SESSION_SYNC,
  json({ t: 'hello', version: 1, role: 'agent', features: ['exec'], bootId: 'b' }),
  json({ t: 'hello', version: 1, role: 'agent', features: ['exec', 'window'], bootId: 'b' }),
  json({ t: 'res', id: 1, ok: true, result: null }),
  json({ t: 'res', id: 1, ok: false, error: { code: 'FAILED', message: 'm' } }),
  json({ t: 'ev', name: 'container.started', data: { pid: 1 } }),
  json({ t: 'ev', name: 'container.exited', data: { exitCode: 0 } }),
  json({ t: 'req', id: 7, method: 'session.open', params: { channel: 3 } }),
  Buffer.from('"t":'), Buffer.from('"id":'), Buffer.from('null'), Buffer.from('1e309'), Buffer.from('"__proto__":'), Buffer.from('{"constructor":{"prototype":{}}}'),
];

function isExpected(e: unknown): boolean {
  return e instanceof ProtocolError;
}

/** The frame codec: whatever the bytes and their chunking, only ProtocolError, and frames that re-encode to themselves. */
export const codecTarget: FuzzTarget = {
  name: 'codec',
  cover: ['/protocol/codec.js', '/protocol/messages.js'],
  dictionary: DICTIONARY,
  run(input) {
    const { bytes, chunk } = wireOf(input);
    const dec = new FrameDecoder();
    try {
      for (let i = 0; i < bytes.length; i += chunk) {
        for (const f of dec.push(bytes.subarray(i, i + chunk))) {
          if (f.payload.length > MAX_PAYLOAD) throw new Error(`a frame of ${f.payload.length} bytes`);
          const again = new FrameDecoder().push(encodeFrame(f));
          if (again.length !== 1 || Buffer.compare(Buffer.from(again[0]!.payload), Buffer.from(f.payload)) !== 0 || again[0]!.channel !== f.channel) {
            throw new Error('a frame does not survive re-encoding');
          }
          if (f.kind === FrameKind.Message) MessageSchema.safeParse(decodeMessage(f));
        }
      }
      if (dec.pending > HEADER_SIZE + MAX_PAYLOAD) throw new Error(`decoder holds ${dec.pending} bytes`);
    } catch (e) {
      if (!isExpected(e)) throw e;
    }
  },
};

/** A transport driven by hand, that records what the connection writes. */
function handTransport(): Transport & { feed: (b: Uint8Array) => void; written: number; end: () => void } {
  let data: ((c: Uint8Array) => void) | undefined;
  let close: ((e?: Error) => void) | undefined;
  let closed = false;
  const t = {
    written: 0,
    write: (d: Uint8Array) => void (t.written += d.length),
    onData: (cb: (c: Uint8Array) => void) => void (data = cb),
    onClose: (cb: (e?: Error) => void) => void (close = cb),
    close: () => {
      if (!closed) (closed = true), close?.();
    },
    feed: (b: Uint8Array) => data?.(b),
    end: () => t.close(),
  };
  return t;
}

let unhandled: unknown;
process.on('unhandledRejection', (e) => (unhandled ??= e));

/**
 * The host's Connection facing a hostile guest: it may close, but only with a
 * ProtocolError (or a plain close), never throw out of its transport callback, leave a
 * promise rejection unhandled, or hold more than its limits allow.
 */
function connectionTarget(name: string, wrap: (t: Transport) => Transport): FuzzTarget {
  return {
    name,
    cover: ['/protocol/'],
    dictionary: DICTIONARY,
    async run(input) {
      const { bytes, chunk } = wireOf(input);
      const t = handTransport();
      const conn = new Connection(wrap(t), { role: 'host', features: ['exec', 'window'] });
      conn.handshake(0).catch(() => {});
      conn.request('container.run', {}).catch(() => {});
      const out = conn.openChannel();
      let got = 0;
      out.on('data', (d) => (got += d.length));
      conn.onEvent(() => {});
      for (let i = 0; i < bytes.length && conn.isOpen; i += chunk) t.feed(bytes.subarray(i, i + chunk));
      await new Promise((r) => setImmediate(r));
      const held = (conn as unknown as { held: { used: number; max: number } }).held;
      if (held.used < 0 || held.used > held.max) throw new Error(`held ${held.used} of ${held.max} bytes`);
      if ((conn as unknown as { peerChannels: Set<number> }).peerChannels.size > HOST_LIMITS.peerChannels) throw new Error('too many peer channels');
      if (!conn.isOpen) {
        const why = conn.closeReason;
        if (!(why instanceof ProtocolError) && !(why instanceof ConnectionClosedError)) throw new Error(`closed with ${String(why)}`);
      }
      conn.close();
      await new Promise((r) => setImmediate(r));
      if (unhandled) {
        const e = unhandled;
        unhandled = undefined;
        throw e instanceof Error ? e : new Error(String(e));
      }
    },
  };
}

export const connectionFuzzTarget = connectionTarget('connection', (t) => t);
/** A clone's host end: everything before the guest's SYNC is dropped, then as above. */
export const resyncFuzzTarget = connectionTarget('resync', (t) => resyncingTransport(t));

export const TARGETS: Record<string, FuzzTarget> = {
  codec: codecTarget,
  connection: connectionFuzzTarget,
  resync: resyncFuzzTarget,
  fuse: fuseFuzzTarget,
};
