import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeFrame, encodeMessage, FrameDecoder, FrameKind, HEADER_SIZE, MAX_PAYLOAD, ProtocolError } from './codec.js';

test('a frame survives a round trip in any chunking', () => {
  const frames = [
    encodeMessage({ t: 'hello', n: 1 }),
    encodeFrame({ kind: FrameKind.Data, channel: 3, payload: Buffer.from('hello world') }),
    encodeFrame({ kind: FrameKind.End, channel: 3, payload: new Uint8Array(0) }),
  ];
  const wire = Buffer.concat(frames);
  for (const size of [1, 2, 5, 13, wire.length]) {
    const dec = new FrameDecoder();
    const out = [];
    for (let i = 0; i < wire.length; i += size) out.push(...dec.push(wire.subarray(i, i + size)));
    assert.equal(out.length, 3, `chunk size ${size}`);
    assert.deepEqual(decodeMessage(out[0]!), { t: 'hello', n: 1 });
    assert.equal(Buffer.from(out[1]!.payload).toString(), 'hello world');
    assert.equal(out[1]!.channel, 3);
    assert.equal(out[2]!.kind, FrameKind.End);
    assert.equal(dec.pending, 0);
  }
});

test('bad magic is rejected and the decoder stays failed until reset', () => {
  const dec = new FrameDecoder();
  const bad = Buffer.alloc(HEADER_SIZE);
  bad.writeUInt16BE(0x1234, 0);
  assert.throws(() => dec.push(bad), (e: unknown) => e instanceof ProtocolError && /bad magic 0x1234/.test((e as Error).message));
  assert.throws(() => dec.push(encodeMessage({})), ProtocolError);
  dec.reset();
  assert.equal(dec.push(encodeMessage({ ok: 1 })).length, 1);
});

test('wrong version, unknown kind, wrong channel and oversize lengths are rejected', () => {
  const good = encodeMessage({});
  const cases: Array<[string, (b: Buffer) => void, RegExp]> = [
    ['version', (b) => b.writeUInt8(9, 2), /version 9/],
    ['kind 0', (b) => b.writeUInt8(0, 3), /unknown frame kind 0/],
    ['kind 77', (b) => b.writeUInt8(77, 3), /unknown frame kind 77/],
    ['message on channel', (b) => b.writeUInt32BE(5, 4), /message frame on channel 5/],
    ['length', (b) => b.writeUInt32BE(MAX_PAYLOAD + 1, 8), /exceeds/],
  ];
  for (const [name, mutate, re] of cases) {
    const b = Buffer.from(good);
    mutate(b);
    assert.throws(() => new FrameDecoder().push(b), re, name);
  }
  const data = encodeFrame({ kind: FrameKind.Data, channel: 1, payload: Buffer.from('x') });
  data.writeUInt32BE(0, 4);
  assert.throws(() => new FrameDecoder().push(data), /stream frame on channel 0/);
});

test('a truncated frame waits for the rest instead of failing', () => {
  const dec = new FrameDecoder();
  const f = encodeMessage({ a: 'b' });
  assert.deepEqual(dec.push(f.subarray(0, f.length - 1)), []);
  assert.equal(dec.push(f.subarray(f.length - 1)).length, 1);
});

test('invalid JSON in a message frame is a protocol error', () => {
  const f = encodeFrame({ kind: FrameKind.Message, channel: 0, payload: Buffer.from('{nope') });
  const [frame] = new FrameDecoder().push(f);
  assert.throws(() => decodeMessage(frame!), /not valid JSON/);
});

test('encoding refuses oversize payloads and bad channels', () => {
  assert.throws(() => encodeFrame({ kind: FrameKind.Data, channel: 1, payload: new Uint8Array(MAX_PAYLOAD + 1) }), /exceeds/);
  assert.throws(() => encodeFrame({ kind: FrameKind.Data, channel: -1, payload: new Uint8Array(1) }), /invalid channel/);
});
