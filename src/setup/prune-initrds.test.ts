import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneInitrds, staleInitrds } from './prune-initrds.js';
import { MANIFEST_SCHEMA, type Manifest } from './manifest.js';

const h = (n: number) => n.toString(16).padStart(16, '0');

test('staleInitrds keeps the manifest\'s and the newest replaced one of each profile', () => {
  const entries = [
    { name: `initrd-${h(1)}`, mtimeMs: 1 },
    { name: `initrd-${h(2)}`, mtimeMs: 2 },
    { name: `initrd-${h(3)}`, mtimeMs: 3 },
    { name: `initrd-${h(4)}`, mtimeMs: 4 },
    { name: `initrd-nested-${h(5)}`, mtimeMs: 5 },
    { name: `initrd-nested-${h(6)}`, mtimeMs: 6 },
    { name: `kernel-${h(7)}`, mtimeMs: 0 },
    { name: `rootfs-${h(8)}`, mtimeMs: 0 },
    { name: `initrd-${h(9)}.tmp-123`, mtimeMs: 0 },
  ];
  // Current: 3 (not the newest: a setup may go back to an older build) and nested 6.
  assert.deepEqual(staleInitrds(entries, [`initrd-${h(3)}`, `initrd-nested-${h(6)}`]), [`initrd-${h(1)}`, `initrd-${h(2)}`]);
  // A manifest without the nested profile: its initrds still keep their newest.
  assert.deepEqual(staleInitrds(entries, [`initrd-${h(4)}`]), [`initrd-${h(1)}`, `initrd-${h(2)}`, `initrd-nested-${h(5)}`]);
  assert.deepEqual(staleInitrds(entries.slice(0, 1), [`initrd-${h(1)}`]), []);
  assert.deepEqual(staleInitrds([], []), []);
});

test('pruneInitrds removes the stale directories and nothing else, and counts their bytes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fcvm-prune-'));
  try {
    const make = async (name: string, age: number, bytes = 1000) => {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, name.startsWith('initrd') ? 'initrd.cpio' : 'file'), Buffer.alloc(bytes));
      const t = new Date(Date.now() - age * 1000);
      await utimes(join(dir, name), t, t);
    };
    for (const [i, age] of [[1, 40], [2, 30], [3, 20], [4, 10]] as const) await make(`initrd-${h(i)}`, age);
    await make(`initrd-nested-${h(5)}`, 50);
    await make(`kernel-${h(6)}`, 60);
    await writeFile(join(dir, 'manifest.json'), '{}');
    const manifest: Manifest = {
      schema: MANIFEST_SCHEMA,
      kernelVersion: 'k',
      kernel: { hash: h(6), path: join(dir, `kernel-${h(6)}`, 'vmlinuz') },
      initrd: { hash: h(4), path: join(dir, `initrd-${h(4)}`, 'initrd.cpio') },
      rootfs: { hash: h(7), path: join(dir, `rootfs-${h(7)}`, 'rootfs.ext4') },
      vmlinux: { hash: h(8), path: join(dir, `vmlinux-${h(8)}`, 'vmlinux') },
      createdAt: new Date().toISOString(),
    };
    const r = await pruneInitrds(dir, manifest);
    assert.deepEqual(r.removed, [`initrd-${h(1)}`, `initrd-${h(2)}`]);
    assert.equal(r.bytes, 2000);
    // The nested profile's one stays: the newest (and only) of its profile.
    assert.deepEqual((await readdir(dir)).sort(), [`initrd-${h(3)}`, `initrd-${h(4)}`, `initrd-nested-${h(5)}`, `kernel-${h(6)}`, 'manifest.json'].sort());
    assert.deepEqual((await pruneInitrds(dir, manifest)).removed, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
