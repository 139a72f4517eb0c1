import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, RemoteError } from './connection.js';
import { memoryTransportPair } from './transport.js';
import { encodeFrame, FrameKind } from './codec.js';

function pair() {
  const [a, b] = memoryTransportPair();
  const host = new Connection(a, { role: 'host', features: ['x', 'y'] });
  const agent = new Connection(b, { role: 'agent', features: ['y', 'z'], bootId: 'boot-1' });
  return { host, agent, a, b };
}

test('handshake negotiates the common features', async () => {
  const { host, agent } = pair();
  const [h, g] = await Promise.all([host.handshake(1000), agent.handshake()]);
  assert.equal(h.role, 'agent');
  assert.equal(h.bootId, 'boot-1');
  assert.equal(g.role, 'host');
  assert.deepEqual(host.features, ['y']);
  assert.deepEqual(agent.features, ['y']);
});

test('requests resolve with results and reject with the remote error code', async () => {
  const { host, agent } = pair();
  agent.onRequest(async (method, params) => {
    if (method === 'add') return (params as { a: number; b: number }).a + (params as { a: number; b: number }).b;
    throw Object.assign(new Error('nope'), { code: 'BAD_REQUEST' });
  });
  await Promise.all([host.handshake(), agent.handshake()]);
  assert.equal(await host.request('add', { a: 2, b: 3 }), 5);
  await assert.rejects(host.request('other'), (e: unknown) => e instanceof RemoteError && e.code === 'BAD_REQUEST' && e.message === 'nope');
});

test('pending requests are rejected together when the connection closes', async () => {
  const { host, agent } = pair();
  agent.onRequest(() => new Promise(() => {}));
  const calls = [host.request('a'), host.request('b')];
  setTimeout(() => host.close(), 5);
  const results = await Promise.allSettled(calls);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.match((r as PromiseRejectedResult).reason.message, /pending when the connection closed/);
  }
  await assert.rejects(host.request('c'), /cannot send "c"/);
});

test('a request times out with the caller in the stack', async () => {
  const { host, agent } = pair();
  agent.onRequest(() => new Promise(() => {}));
  await assert.rejects(host.request('slow', {}, 20), (e: Error) => e.name === 'TimeoutError' && /slow/.test(e.message) && /connection\.test/.test(e.stack ?? ''));
});

test('channels carry bytes and EOF in order, and events arrive', async () => {
  const { host, agent } = pair();
  const ch = host.openChannel();
  const got: string[] = [];
  const ended = new Promise<void>((r) => agent.channel(ch.id).on('end', r));
  agent.channel(ch.id).on('data', (d) => got.push(d.toString()));
  const ev = new Promise((r) => host.onEvent((name, data) => r([name, data])));
  ch.write(Buffer.from('one '));
  ch.write(Buffer.from('two'));
  ch.end();
  agent.emit('thing.happened', { n: 1 });
  await ended;
  assert.equal(got.join(''), 'one two');
  assert.deepEqual(await ev, ['thing.happened', { n: 1 }]);
  assert.equal(ch.id % 2, 1);
  assert.equal(agent.openChannel().id % 2, 0);
});

test('a malformed frame closes the connection with a protocol error', async () => {
  const { host, b } = pair();
  const pending = host.request('x');
  b.write(encodeFrame({ kind: FrameKind.Message, channel: 0, payload: Buffer.from('{"t":"bogus"}') }));
  await assert.rejects(pending, /invalid message/);
  assert.match(String(await host.closed), /invalid message/);
});

test('a version mismatch in hello fails the handshake', async () => {
  const { host, b } = pair();
  const hs = host.handshake(1000);
  b.write(encodeFrame({ kind: FrameKind.Message, channel: 0, payload: Buffer.from(JSON.stringify({ t: 'hello', version: 99, role: 'agent', features: [] })) }));
  await assert.rejects(hs, /version 99/);
});

test('an adopted channel id is never handed out by openChannel', async () => {
  const [a] = memoryTransportPair();
  const host = new Connection(a, { role: 'host', features: [] });
  host.adoptChannel(3);
  const ids = [host.openChannel().id, host.openChannel().id];
  assert.deepEqual(ids, [5, 7]);
});

test('bytes and the end that arrive before anyone listens are delivered to the first listener, in order', async () => {
  const { host, agent } = pair();
  agent.channel(9).write(Buffer.from('early '));
  agent.channel(9).write(Buffer.from('bytes'));
  agent.channel(9).end();
  await new Promise((r) => setTimeout(r, 10));
  const ch = host.adoptChannel(9);
  const got: string[] = [];
  const ended = new Promise<void>((r) => ch.on('end', () => r()));
  ch.on('data', (d) => got.push(d.toString()));
  await ended;
  assert.equal(got.join(''), 'early bytes');
});
