import { test } from 'node:test';
import assert from 'node:assert/strict';
import { locate, parseMappings, PAGE_2M } from './mappings.js';

const MiB = 2 ** 20;
const region = (base: number, size: number, offset: number, ps = 4096) => ({ base_host_virt_addr: base, size, offset, page_size: ps, page_size_kib: ps });

test('two regions split around the MMIO gap are accepted, sorted by address', () => {
  const r = parseMappings(JSON.stringify([region(0x7f00_0000_0000, 64 * MiB, 64 * MiB), region(0x7e00_0000_0000, 64 * MiB, 0)]), 128 * MiB);
  assert.ok(r.ok);
  assert.deepEqual(r.regions.map((x) => x.offset), [0, 64 * MiB]);
  assert.equal(r.pageSize, 4096);
});

test('Firecracker 1.10 sends only page_size_kib, in bytes despite its name', () => {
  const r = parseMappings(JSON.stringify([{ base_host_virt_addr: 0x10000, size: MiB, offset: 0, page_size_kib: 4096 }]), MiB);
  assert.ok(r.ok);
  assert.equal(r.pageSize, 4096);
});

test('every malformed or out-of-bounds message is refused with the reason', () => {
  const bad: [unknown, RegExp][] = [
    ['{"x"', /not JSON/],
    [{ a: 1 }, /not a JSON array/],
    [[], /no region/],
    [[region(0x10000, MiB, 3 * MiB + MiB / 2)], /ends past the memory file/],
    [[region(0x10000, MiB, 0), region(0x10000 + MiB / 2, MiB, MiB)], /overlap in the VMM/],
    [[region(0x10000, MiB, 0), region(0x900000, MiB, 0)], /overlap in the memory file/],
    [[region(0x10001, MiB, 0)], /not aligned/],
    [[region(0x10000, MiB + 1, 0)], /not a positive multiple/],
    [[region(0x10000, MiB, 0, 8192)], /neither 4 KiB nor 2 MiB/],
    [[{ ...region(0x10000, MiB, 0), size: -4096 }], /size is missing or not a non-negative integer/],
    [[{ ...region(0x10000, MiB, 0), offset: '0' }], /offset is missing/],
    [[region(2 ** 47, MiB, 0)], /outside user space/],
    [[region(0x200000, PAGE_2M, 0, PAGE_2M), region(0x10000000, MiB, PAGE_2M)], /different page sizes/],
    [Array.from({ length: 65 }, (_, i) => region(0x10000 + i * 4096, 4096, i * 4096)), /65 regions/],
  ];
  for (const [msg, why] of bad) {
    const r = parseMappings(typeof msg === 'string' ? msg : JSON.stringify(msg), 4 * MiB);
    assert.ok(!r.ok, `accepted ${JSON.stringify(msg).slice(0, 80)}`);
    assert.match(r.why, why);
  }
});

test('locate maps an address to its page in the file, and refuses addresses outside every region', () => {
  const r = parseMappings(JSON.stringify([region(0x100000, MiB, 0), region(0x400000, MiB, MiB)]), 2 * MiB);
  assert.ok(r.ok);
  const hint = new Int32Array(1);
  assert.equal(locate(r.regions, 0x100000, hint), 0);
  assert.equal(locate(r.regions, 0x100fff, hint), 0);
  assert.equal(locate(r.regions, 0x401234, hint), MiB + 0x1000);
  assert.equal(hint[0], 1);
  assert.equal(locate(r.regions, 0x100000 + MiB, hint), -1);
  assert.equal(locate(r.regions, 0x3fffff, hint), -1);
  assert.equal(locate(r.regions, 0xfffff, hint), -1);
});
