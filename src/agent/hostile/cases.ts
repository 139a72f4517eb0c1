import { HEADER_SIZE, MAGIC, PROTOCOL_VERSION, FrameKind, encodeMessage } from '../../protocol/codec.js';
import { EVENTS, EXEC, METHODS } from '../../protocol/api.js';
import { SESSION_SYNC } from '../../protocol/session-sync.js';
import { CHANNEL_WINDOW, FEATURE_WINDOW } from '../../protocol/channel.js';
import type { RawPeer } from './peer.js';

/**
 * What a hostile guest does to its host, by case name (kernel argument
 * fcvm.agent=hostile:CASE). Each case either breaks the protocol in one way, and the
 * host must end the VM saying so, or survives as a (noisy) agent and ends with exit 42.
 */
export const HOSTILE_CASES = {
  /** Bytes that are no frame at all. */
  garbage: async (p) => {
    await p.handshake();
    p.raw(Buffer.from('GET / HTTP/1.1\r\nHost: not-a-frame\r\n\r\n'));
  },
  /** A header announcing a 4 GiB payload. */
  oversized: async (p) => {
    await p.handshake();
    const h = Buffer.alloc(HEADER_SIZE);
    h.writeUInt16BE(MAGIC, 0);
    h.writeUInt8(PROTOCOL_VERSION, 2);
    h.writeUInt8(FrameKind.Data, 3);
    h.writeUInt32BE(2, 4);
    h.writeUInt32BE(0xffffffff, 8);
    p.raw(h);
  },
  /** Half a frame, and never the rest. */
  truncated: async (p) => {
    await p.handshake();
    p.answer(await p.request(METHODS.configure));
    const f = encodeMessage({ t: 'ev', name: EVENTS.started, data: {} });
    p.raw(f.subarray(0, f.length - 3));
  },
  /** Data on more channels than the host ever opened. */
  channels: async (p) => {
    await p.handshake();
    for (let id = 2; id <= 4000; id += 2) p.data(id, Buffer.from('x'));
  },
  /** Keeps windows, then sends a channel more than its window without waiting for credit. */
  window: async (p) => {
    await p.handshake([FEATURE_WINDOW]);
    const chunk = Buffer.alloc(64 * 1024, 0x77);
    for (let i = 0; i <= CHANNEL_WINDOW / chunk.length; i++) p.data(2, chunk);
  },
  'bad-json': async (p) => {
    await p.handshake();
    p.raw(frameOf(FrameKind.Message, 0, Buffer.from('{"t":"ev","name":')));
  },
  /** A message of almost 1 MiB: arrays nested 400,000 deep. */
  'huge-json': async (p) => {
    await p.handshake();
    p.raw(frameOf(FrameKind.Message, 0, Buffer.from('['.repeat(400_000) + ']'.repeat(400_000))));
  },
  /** An answer to a request the host never made. */
  'stray-reply': async (p) => {
    await p.handshake();
    p.send({ t: 'res', id: 424242, ok: true, result: { surprise: true } });
  },
  /** The session marker of a restore, replayed in a running session. */
  sync: async (p) => {
    await p.handshake();
    p.raw(SESSION_SYNC);
    p.send({ t: 'hello', version: 1, role: 'agent', features: [], bootId: 'replayed' });
  },
  /** Stops reading, then asks the host thousands of questions with long names. */
  'no-read': async (p) => {
    await p.handshake();
    p.stopReading();
    const method = 'x'.repeat(8192);
    for (let id = 1; id <= 4000; id++) p.send({ t: 'req', id, method, params: {} });
  },
  /** Answers the hello, then nothing ever again. */
  silent: async (p) => {
    await p.handshake();
  },
  /**
   * A noisy agent that stays within the protocol: it runs a "container", floods health
   * events, requests, unknown events, megabytes of output without a newline, and an
   * exec session's channel while its client does not read; then reports exit 42.
   */
  flood: async (p) => {
    await p.handshake(['container.run', 'session', 'exec']);
    p.answer(await p.request(METHODS.configure));
    const run = await p.request(METHODS.run);
    p.answer(run);
    const out = run.params.stdoutChannel as number;
    p.send({ t: 'ev', name: EVENTS.started, data: { pid: 1 } });
    p.data(out, Buffer.from('hostile: started\n'));
    for (let i = 0; i < 50_000; i++) p.send({ t: 'ev', name: EVENTS.health, data: { status: i % 2 ? 'healthy' : 'unhealthy', output: 'y'.repeat(500) } });
    for (let i = 0; i < 20_000; i++) p.send({ t: 'ev', name: `no.such.event.${i}`, data: { i } });
    for (let id = 1; id <= 2000; id++) p.send({ t: 'req', id, method: 'no.such.method', params: {} });
    p.send({ t: 'ev', name: EVENTS.started, data: { pid: 2 } });
    const chunk = Buffer.alloc(64 * 1024, 0x7a);
    for (let i = 0; i < 16 * 32; i++) p.data(out, chunk); // 32 MiB, no newline
    p.data(out, Buffer.from('\nhostile: flooded stdout\n'));
    // An exec client (the test's) connects and reads nothing: flood its channel.
    const session = await p.request(EXEC.openSession);
    p.answer(session);
    const ch = session.params.channel as number;
    for (let i = 0; i < 16 * 96; i++) p.data(ch, chunk); // 96 MiB
    p.end(ch);
    p.data(out, Buffer.from('hostile: flooded the exec channel\n'));
    p.end(out);
    p.end(run.params.stderrChannel as number);
    p.send({ t: 'ev', name: EVENTS.exited, data: { exitCode: 42 } });
    p.send({ t: 'ev', name: EVENTS.exited, data: { exitCode: 43 } });
  },
} satisfies Record<string, (p: RawPeer) => Promise<void>>;

export type HostileCase = keyof typeof HOSTILE_CASES;

function frameOf(kind: FrameKind, channel: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt16BE(MAGIC, 0);
  h.writeUInt8(PROTOCOL_VERSION, 2);
  h.writeUInt8(kind, 3);
  h.writeUInt32BE(channel, 4);
  h.writeUInt32BE(payload.length, 8);
  return Buffer.concat([h, payload]);
}
