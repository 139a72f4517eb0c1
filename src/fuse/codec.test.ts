import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArgReader, checkName, DecodeError, decodeRequest, encodeNotify, encodeReply } from './codec.js';
import { encodeFuseFrame, FrameError, FuseFrameDecoder, FuseFrameKind, MAX_FRAME } from './channel-frames.js';
import { decodeDev, encodeDev, putDirent, direntSize } from './replies.js';

const header = (len: number, opcode: number, extlen = 0) => {
  const b = Buffer.alloc(len);
  b.writeUInt32LE(len, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(7n, 8);
  b.writeUInt16LE(extlen, 36);
  return b;
};

test('requests: header fields, arguments, extensions cut off, lies refused', () => {
  const r = header(56, 1, 1);
  Buffer.from('name\0').copy(r, 40);
  const { header: h, args } = decodeRequest(r);
  assert.equal(h.opcode, 1);
  assert.equal(h.unique, 7n);
  assert.equal(args.remaining, 8);
  assert.throws(() => decodeRequest(Buffer.alloc(39)), DecodeError);
  const lie = header(48, 1);
  lie.writeUInt32LE(4096, 0);
  assert.throws(() => decodeRequest(lie), /says 4096 bytes but has 48/);
  assert.throws(() => decodeRequest(header(40, 1, 100)), /extension length/);
});

test('names: one component, 1..255 bytes, no "/", not "." or ".."', () => {
  for (const bad of ['', '.', '..', 'a/b', 'x'.repeat(256)]) assert.throws(() => checkName(Buffer.from(bad)), DecodeError, bad);
  for (const ok of ['a', '...', '.hidden', 'x'.repeat(255), 'ünïcode']) checkName(Buffer.from(ok));
  const r = new ArgReader(Buffer.from('abc\0def\0'));
  assert.deepEqual(r.name(), Buffer.from('abc\0'));
  assert.deepEqual(r.name(), Buffer.from('def\0'));
  assert.throws(() => r.u32(), /too short/);
  assert.throws(() => new ArgReader(Buffer.from('noterm')).name(), /NUL/);
});

test('offsets beyond 2^53 are refused, not rounded', () => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(2n ** 60n);
  assert.throws(() => new ArgReader(b).offset(), DecodeError);
});

test('replies and notifications', () => {
  const r = encodeReply(9n, 2, Buffer.from('xy'));
  assert.equal(r.readUInt32LE(0), 18);
  assert.equal(r.readInt32LE(4), -2);
  assert.equal(r.readBigUInt64LE(8), 9n);
  const n = encodeNotify(2, Buffer.alloc(24));
  assert.equal(n.readInt32LE(4), 2);
  assert.equal(n.readBigUInt64LE(8), 0n);
});

test('device numbers survive glibc <-> kernel encodings', () => {
  for (const [major, minor] of [[1, 3], [8, 300], [259, 65536], [4095, 1048575]] as const) {
    const glibc = ((BigInt(major) & 0xfffn) << 8n) | ((BigInt(major) & ~0xfffn) << 32n) | (BigInt(minor) & 0xffn) | ((BigInt(minor) & ~0xffn) << 12n);
    const kernel = ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
    assert.equal(encodeDev(glibc), kernel);
    assert.equal(decodeDev(kernel), glibc);
  }
});

test('dirents are 8-byte aligned records', () => {
  const out = Buffer.alloc(64);
  const end = putDirent(out, 0, 5n, 1n, 4, Buffer.from('abc'));
  assert.equal(end, direntSize(3));
  assert.equal(end % 8, 0);
  assert.equal(out.readUInt32LE(16), 3);
  assert.equal(out.subarray(24, 27).toString(), 'abc');
});

test('channel frames: any chunking, bad lengths and kinds refused', () => {
  const a = encodeFuseFrame(3, FuseFrameKind.Message, Buffer.from('hello'));
  const b = encodeFuseFrame(0, FuseFrameKind.Hello);
  const all = Buffer.concat([a, b]);
  const d = new FuseFrameDecoder();
  const got = [];
  for (const byte of all) got.push(...d.push(Buffer.from([byte])));
  assert.deepEqual(got.map((f) => [f.volume, f.kind, f.body.toString()]), [[3, 0, 'hello'], [0, 1, '']]);
  const huge = Buffer.alloc(8);
  huge.writeUInt32LE(MAX_FRAME + 1, 0);
  assert.throws(() => new FuseFrameDecoder().push(huge), FrameError);
  const kind = encodeFuseFrame(0, 7 as FuseFrameKind);
  assert.throws(() => new FuseFrameDecoder().push(kind), /unknown frame kind/);
});
