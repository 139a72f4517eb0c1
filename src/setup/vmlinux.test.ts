import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bzImagePayload, checkPvhElf } from './vmlinux.js';

/** A bzImage header with `setup` sectors and a payload of `payload` at `off` from the kernel proper. */
function bzImage(setup: number, off: number, payload: number[], version = 0x20f): Buffer {
  const b = Buffer.alloc((setup + 1) * 512 + off + payload.length + 8);
  b[0x1f1] = setup;
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(version, 0x206);
  b.writeUInt32LE(off, 0x248);
  b.writeUInt32LE(payload.length, 0x24c);
  Buffer.from(payload).copy(b, (setup + 1) * 512 + off);
  return b;
}

test('the payload is found from the boot header, and its compression from its magic', () => {
  assert.deepEqual(bzImagePayload(bzImage(39, 716, [0x02, 0x21, 0x4c, 0x18, 1, 2, 3])), { offset: 40 * 512 + 716, length: 7, format: 'lz4' });
  assert.equal(bzImagePayload(bzImage(4, 0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 9])).format, 'xz');
  assert.equal(bzImagePayload(bzImage(4, 8, [0x28, 0xb5, 0x2f, 0xfd])).format, 'zstd');
  assert.throws(() => bzImagePayload(Buffer.alloc(1024)), /not a bzImage/);
  assert.throws(() => bzImagePayload(bzImage(4, 0, [1, 2, 3, 4])), /unknown payload compression/);
  assert.throws(() => bzImagePayload(bzImage(4, 0, [0x1f, 0x8b], 0x206)), /2\.08 or later/);
  const past = bzImage(4, 0, [0x1f, 0x8b]);
  past.writeUInt32LE(1 << 20, 0x24c);
  assert.throws(() => bzImagePayload(past), /outside the file/);
});

/** A minimal ELF64 x86-64 header with one PT_NOTE holding a note of `type` named `name`. */
function elf(name: string, type: number): Buffer {
  const note = Buffer.alloc(12 + 4 + 8);
  note.writeUInt32LE(name.length + 1, 0);
  note.writeUInt32LE(8, 4);
  note.writeUInt32LE(type, 8);
  note.write(name, 12, 'latin1');
  const b = Buffer.alloc(64 + 56 + note.length);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2;
  b.writeUInt16LE(62, 18);
  b.writeBigUInt64LE(64n, 32);
  b.writeUInt16LE(56, 54);
  b.writeUInt16LE(1, 56);
  b.writeUInt32LE(4, 64);
  b.writeBigUInt64LE(120n, 64 + 8);
  b.writeBigUInt64LE(BigInt(note.length), 64 + 32);
  note.copy(b, 120);
  return b;
}

test('a kernel without a PVH entry note, or not x86-64, is refused', () => {
  const read = (b: Buffer) => (off: number, len: number) => b.subarray(off, off + len);
  const good = elf('Xen', 18);
  assert.doesNotThrow(() => checkPvhElf(good, read(good)));
  const noPvh = elf('Xen', 17);
  assert.throws(() => checkPvhElf(noPvh, read(noPvh)), /no PVH entry note/);
  const arm = elf('Xen', 18);
  arm.writeUInt16LE(183, 18);
  assert.throws(() => checkPvhElf(arm, read(arm)), /not an x86-64 ELF/);
});
