import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHANNEL_WINDOW, FEATURE_WINDOW } from './channel.js';
import { Connection } from './connection.js';
import { encodeFrame, encodeMessage, FrameDecoder, FrameKind, ProtocolError } from './codec.js';
import { memoryTransportPair } from './transport.js';

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

async function pair(hostFeatures = [FEATURE_WINDOW], agentFeatures = [FEATURE_WINDOW]) {
  const [a, b] = memoryTransportPair();
  const host = new Connection(a, { role: 'host', features: hostFeatures });
  const agent = new Connection(b, { role: 'agent', features: agentFeatures });
  await Promise.all([host.handshake(1000), agent.handshake()]);
  return { host, agent };
}

test('a held channel waits alone: the other channels of the link go on', async () => {
  const { host, agent } = await pair();
  assert.equal(host.windows, true);
  const slow = host.openChannel();
  const fast = host.openChannel();
  let slowGot = 0;
  let fastGot = 0;
  let release: (() => void) | undefined;
  slow.on('data', (d) => {
    slowGot += d.length;
    release ??= slow.hold(); // a consumer that stopped taking
  });
  fast.on('data', (d) => (fastGot += d.length));
  const size = 4 * CHANNEL_WINDOW;
  agent.channel(slow.id).write(Buffer.alloc(size, 1));
  agent.channel(fast.id).write(Buffer.alloc(size, 2));
  await tick();
  assert.equal(fastGot, size, 'the other channel got everything');
  assert.ok(slowGot <= CHANNEL_WINDOW, `the held channel got ${slowGot}, more than a window`);
  assert.ok(agent.channel(slow.id).backlog >= size - CHANNEL_WINDOW, 'the rest waits at the sender');
  let drained = false;
  agent.channel(slow.id).onceDrained(() => (drained = true));
  release!();
  // Released, it takes the rest (holding again only if told to).
  release = () => {};
  await tick();
  assert.equal(slowGot, size);
  assert.equal(drained, true);
  assert.equal(agent.channel(slow.id).backlog, 0);
});

test('End comes after the bytes that waited for the window', async () => {
  const { host, agent } = await pair();
  const ch = host.openChannel();
  const release = ch.hold();
  let got = 0;
  let endedAt = -1;
  ch.on('data', (d) => (got += d.length));
  ch.on('end', () => (endedAt = got));
  const sender = agent.channel(ch.id);
  sender.write(Buffer.alloc(3 * CHANNEL_WINDOW));
  sender.end();
  await tick();
  assert.equal(endedAt, -1);
  release();
  await tick();
  assert.equal(endedAt, 3 * CHANNEL_WINDOW);
});

test('a peer without windows: a hold stops the whole link, and nothing is limited', async () => {
  const { host, agent } = await pair([FEATURE_WINDOW], []);
  assert.equal(host.windows, false);
  const ch = host.openChannel();
  let got = 0;
  ch.on('data', (d) => (got += d.length));
  agent.channel(ch.id).write(Buffer.alloc(3 * CHANNEL_WINDOW));
  await tick();
  assert.equal(got, 3 * CHANNEL_WINDOW);
  // The host writes past a window to it without waiting for credit.
  host.channel(ch.id).write(Buffer.alloc(3 * CHANNEL_WINDOW));
  assert.equal(host.channel(ch.id).backlog, 0);
});

test('a closed connection lets writers that wait for a drain go on', async () => {
  const { host, agent } = await pair();
  const ch = host.openChannel();
  ch.hold();
  ch.on('data', () => {});
  const sender = agent.channel(ch.id);
  sender.write(Buffer.alloc(2 * CHANNEL_WINDOW));
  await tick();
  let drained = false;
  sender.onceDrained(() => (drained = true));
  agent.close();
  await tick();
  assert.equal(drained, true);
});

/** A host Connection with windows, and the raw transport of a guest that may send anything. */
async function rawGuest() {
  const [a, b] = memoryTransportPair();
  const host = new Connection(a, { role: 'host', features: [FEATURE_WINDOW] });
  const frames: ReturnType<FrameDecoder['push']> = [];
  const decoder = new FrameDecoder();
  b.onData((c) => frames.push(...decoder.push(c)));
  const hello = host.handshake(1000);
  b.write(encodeMessage({ t: 'hello', version: 1, role: 'agent', features: [FEATURE_WINDOW] }));
  await hello;
  return { host, peer: b, frames };
}

const closedWith = (conn: Connection) => Promise.race([conn.closed, tick(2000).then(() => undefined)]);

test('a guest that sends past its window breaks the protocol', async () => {
  const { host, peer } = await rawGuest();
  const ch = host.openChannel();
  ch.hold();
  ch.on('data', () => {});
  for (let i = 0; i <= CHANNEL_WINDOW / 65536; i++) peer.write(encodeFrame({ kind: FrameKind.Data, channel: ch.id, payload: Buffer.alloc(65536) }));
  const err = await closedWith(host);
  assert.ok(err instanceof ProtocolError, String(err));
  assert.match(err.message, /past its window on channel 1/);
});

test('a guest within its window is given credit as its bytes are taken, not before', async () => {
  const { host, peer, frames } = await rawGuest();
  const ch = host.openChannel();
  const release = ch.hold();
  ch.on('data', () => {});
  for (let i = 0; i < CHANNEL_WINDOW / 65536; i++) peer.write(encodeFrame({ kind: FrameKind.Data, channel: ch.id, payload: Buffer.alloc(65536) }));
  await tick();
  const credits = () => frames.filter((f) => f.kind === FrameKind.Credit).reduce((n, f) => n + Buffer.from(f.payload).readUInt32BE(0), 0);
  assert.equal(credits(), 0);
  release();
  await tick();
  assert.equal(credits(), CHANNEL_WINDOW);
  assert.equal(host.isOpen, true);
});

test('a credit frame of the wrong size breaks the protocol; credit for an unknown channel is ignored', async () => {
  const { host, peer } = await rawGuest();
  peer.write(encodeFrame({ kind: FrameKind.Credit, channel: 7, payload: Buffer.alloc(4) }));
  await tick();
  assert.equal(host.isOpen, true);
  peer.write(encodeFrame({ kind: FrameKind.Credit, channel: 7, payload: Buffer.alloc(3) }));
  const err = await closedWith(host);
  assert.ok(err instanceof ProtocolError, String(err));
  assert.match(err.message, /credit frame of 3 bytes/);
});

test('a message sent once a channel has flushed comes after all of its bytes, however slow the reader', async () => {
  const { host, agent } = await pair();
  const ch = host.openChannel();
  const release = ch.hold();
  let got = 0;
  let ended = false;
  let gotAtExit = -1;
  ch.on('data', (d) => (got += d.length));
  ch.on('end', () => (ended = true));
  host.onEvent((name) => name === 'exited' && (gotAtExit = got + (ended ? 0.5 : 0)));
  const sender = agent.channel(ch.id);
  sender.write(Buffer.alloc(3 * CHANNEL_WINDOW));
  sender.end();
  sender.onceFlushed(() => agent.emit('exited'));
  await tick();
  assert.equal(gotAtExit, -1, 'no exit while output waits for the window');
  release();
  await tick();
  assert.equal(gotAtExit, 3 * CHANNEL_WINDOW + 0.5, 'the exit came after every byte and the end');
});
