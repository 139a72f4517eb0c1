import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, HOST_LIMITS } from './connection.js';
import { memoryTransportPair, type Transport } from './transport.js';
import { encodeFrame, encodeMessage, FrameDecoder, FrameKind, HEADER_SIZE, MAX_PAYLOAD, ProtocolError } from './codec.js';
import { resyncingTransport, SESSION_SYNC } from './session-sync.js';
import { ContainerStateSchema, ExecExitedSchema, ExitedEventSchema } from './api.js';

/** A host Connection and the raw transport of a peer that may send anything. */
function hostFacingRawPeer(limits = {}) {
  const [a, b] = memoryTransportPair();
  const host = new Connection(a, { role: 'host', features: [], limits });
  const sent: Buffer[] = [];
  b.onData((c) => sent.push(Buffer.from(c)));
  return { host, peer: b, sent };
}

const agentHello = encodeMessage({ t: 'hello', version: 1, role: 'agent', features: [] });
const data = (channel: number, bytes: number) => encodeFrame({ kind: FrameKind.Data, channel, payload: Buffer.alloc(bytes, 0x61) });

async function closedWith(conn: Connection): Promise<Error | undefined> {
  return Promise.race([conn.closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000))]);
}

test('more channels than the limit, opened by the peer, close the connection with a protocol error', async () => {
  const { host, peer } = hostFacingRawPeer();
  peer.write(agentHello);
  for (let id = 2; id < 2 + 2 * (HOST_LIMITS.peerChannels + 1); id += 2) peer.write(data(id, 1));
  const err = await closedWith(host);
  assert.ok(err instanceof ProtocolError, String(err));
  assert.match(err.message, /more than 64 channels that this side did not open/);
});

test('the channel limit counts channels the peer holds open, not every one it ever used', async () => {
  const { host, peer } = hostFacingRawPeer({ peerChannels: 2 });
  for (let id = 2; id < 2000; id += 2) {
    peer.write(data(id, 1));
    await new Promise((r) => setImmediate(r));
    host.releaseChannel(id);
  }
  assert.equal(host.isOpen, true);
});

test('bytes for a released channel are dropped without making a new one', async () => {
  const { host, peer } = hostFacingRawPeer({ peerChannels: 1 });
  const ch = host.openChannel();
  host.releaseChannel(ch.id);
  for (let i = 0; i < 100; i++) peer.write(data(ch.id, 10));
  peer.write(data(1001, 10)); // one channel it never opened is within the limit of 1
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(host.isOpen, true);
});

test('what unlistened channels hold is bounded over the whole connection', async () => {
  const { host, peer } = hostFacingRawPeer({ heldBytes: 3 << 20 });
  for (let id = 2; id < 2 + 2 * 20; id += 2) for (let i = 0; i < 4; i++) peer.write(data(id, 512 * 1024));
  await new Promise((r) => setTimeout(r, 50));
  let got = 0;
  for (let id = 2; id < 2 + 2 * 20; id += 2) host.channel(id).on('data', (d) => (got += d.length));
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(got <= 3 << 20, `held ${got} bytes`);
  assert.ok(got >= 2 << 20, `held only ${got} bytes`);
});

test('an answer to a request never made is a protocol error; a late one is not', async () => {
  const { host, peer } = hostFacingRawPeer();
  peer.write(agentHello);
  const late = host.request('slow', {}, 5).catch(() => {});
  await late;
  peer.write(encodeMessage({ t: 'res', id: 1, ok: true, result: null }));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(host.isOpen, true, 'a late answer is dropped');
  peer.write(encodeMessage({ t: 'res', id: 777, ok: true, result: null }));
  const err = await closedWith(host);
  assert.match(String(err), /answer to request 777, which was never made/);
});

test('a second hello, or one from a peer of the same role, is a protocol error', async () => {
  for (const [frames, re] of [
    [[agentHello, agentHello], /second hello/],
    [[encodeMessage({ t: 'hello', version: 1, role: 'host', features: [] })], /is the host too/],
  ] as const) {
    const { host, peer } = hostFacingRawPeer();
    for (const f of frames) peer.write(f);
    assert.match(String(await closedWith(host)), re);
  }
});

test('malformed JSON, a message that is no message, and a wrong version are protocol errors', async () => {
  const cases: Array<[Buffer, RegExp]> = [
    [encodeFrame({ kind: FrameKind.Message, channel: 0, payload: Buffer.from('{"t":') }), /not valid JSON/],
    [encodeMessage([1, 2, 3]), /invalid message/],
    [encodeFrame({ kind: FrameKind.Message, channel: 0, payload: Buffer.from('['.repeat(200_000) + ']'.repeat(200_000)) }), /invalid message|not valid JSON/],
    [encodeMessage({ t: 'hello', version: 99, role: 'agent', features: [] }), /version 99/],
  ];
  for (const [frame, re] of cases) {
    const { host, peer } = hostFacingRawPeer();
    peer.write(frame);
    assert.match(String(await closedWith(host)), re);
  }
});

test('a peer that stops reading is dropped once it holds back more than the backlog limit', async () => {
  let backlog = 0;
  const t: Transport = {
    write: (d) => void (backlog += d.length),
    onData: () => {},
    onClose: () => {},
    close: () => {},
    backlog: () => backlog,
  };
  const host = new Connection(t, { role: 'host', features: [], limits: { backlog: 1 << 20 } });
  const ch = host.openChannel();
  for (let i = 0; i < 40 && host.isOpen; i++) ch.write(Buffer.alloc(64 * 1024));
  assert.equal(host.isOpen, false);
  assert.match(String(await host.closed), /the peer stopped reading/);
});

test('a replayed SYNC after the session started is a protocol error, not a new session', async () => {
  const [a, b] = memoryTransportPair();
  const host = new Connection(resyncingTransport(a), { role: 'host', features: [] });
  b.write(Buffer.concat([Buffer.from('old session junk'), SESSION_SYNC, agentHello]));
  await host.handshake(1000);
  b.write(SESSION_SYNC);
  b.write(agentHello);
  assert.match(String(await closedWith(host)), /bad magic/);
});

test('a frame sent one byte at a time costs no more than one sent whole', () => {
  const f = encodeFrame({ kind: FrameKind.Data, channel: 3, payload: Buffer.alloc(MAX_PAYLOAD, 7) });
  const dec = new FrameDecoder();
  const t0 = performance.now();
  let frames = 0;
  for (let i = 0; i < f.length; i++) frames += dec.push(f.subarray(i, i + 1)).length;
  assert.equal(frames, 1);
  assert.ok(performance.now() - t0 < 5000, `took ${performance.now() - t0} ms`);
  assert.equal(dec.pending, 0);
});

test('an oversized length is refused at the header, before any payload is held', () => {
  const head = Buffer.alloc(HEADER_SIZE);
  head.writeUInt16BE(0x4656, 0);
  head.writeUInt8(1, 2);
  head.writeUInt8(FrameKind.Data, 3);
  head.writeUInt32BE(3, 4);
  head.writeUInt32BE(0xffffffff, 8);
  const dec = new FrameDecoder();
  assert.throws(() => dec.push(head), /exceeds/);
});

test('an exit code outside 0-255 from the guest is not believed', () => {
  for (const exitCode of [-1, 256, 1e9, 1.5]) {
    assert.equal(ExitedEventSchema.safeParse({ exitCode }).success, false, `container exit ${exitCode}`);
    assert.equal(ExecExitedSchema.safeParse({ execId: 'a', exitCode }).success, false, `exec exit ${exitCode}`);
    assert.equal(ContainerStateSchema.safeParse({ state: 'exited', exitCode }).success, false, `state exit ${exitCode}`);
  }
  for (const exitCode of [0, 137, 255]) assert.equal(ExitedEventSchema.safeParse({ exitCode }).success, true);
});
