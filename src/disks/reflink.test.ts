import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFcvmError } from '../errors/fcvm-error.js';
import { layoutFor } from '../setup/layout.js';
import { which } from '../util/exec.js';
import { canReflink, reflink } from './reflink.js';
import { createReflinkFs, ensureReflinkFs, isMountPoint } from './reflink-fs.js';

const MiB = 2 ** 20;
const used = (dir: string) => {
  const s = statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
};
const readAt = (path: string, off: number, len: number) => {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, off);
    return b;
  } finally {
    closeSync(fd);
  }
};
const writeAt = (path: string, off: number, data: Buffer) => {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, off);
  } finally {
    closeSync(fd);
  }
};

async function unavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root to loop-mount a btrfs';
  if (!(await which('mkfs.btrfs'))) return 'needs btrfs-progs (mkfs.btrfs)';
  return undefined;
}

async function skipUnless(t: TestContext): Promise<boolean> {
  const why = await unavailable();
  if (!why) return true;
  process.stderr.write(`\n*** SKIPPED ${t.name}: ${why} ***\n`);
  t.skip(why);
  return false;
}

describe('copy-on-write disks by reflink, on a real loop-mounted btrfs', { concurrency: false }, () => {
  let dir = '';
  let mnt = '';
  let base = '';
  const DISK = 256 * MiB;

  before(async () => {
    if (await unavailable()) return;
    dir = mkdtempSync(join(tmpdir(), 'fcvm-reflink-'));
    mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const img = join(dir, 'btrfs.img');
    writeFileSync(img, '');
    execFileSync('truncate', ['-s', '2G', img]);
    execFileSync('mkfs.btrfs', ['-q', img]);
    execFileSync('mount', ['-o', 'loop', img, mnt]);
    // A base disk of random contents: nothing the filesystem could share by accident.
    base = join(mnt, 'rootfs.ext4');
    for (let off = 0; off < DISK; off += 64 * MiB) writeFileSync(base, randomBytes(64 * MiB), { flag: off === 0 ? 'w' : 'a' });
    execFileSync('sync');
  });

  after(() => {
    if (!dir) return;
    if (mnt && isMountPoint(mnt)) execFileSync('umount', [mnt]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a VM\'s disk and a clone\'s disk cost no copy, and writes stay private', async (t) => {
    if (!(await skipUnless(t))) return;
    assert.equal(await canReflink(mnt), true);
    const before0 = used(mnt);
    const t0 = performance.now();
    const vm = join(mnt, 'vm-root.raw');
    await reflink(base, vm);
    // The snapshot freezes the VM's disk; a clone gets a reflink of the frozen one.
    const frozen = join(mnt, 'frozen-root.raw');
    await reflink(vm, frozen);
    const clone = join(mnt, 'clone-root.raw');
    await reflink(frozen, clone);
    const reflinkMs = performance.now() - t0;
    execFileSync('sync');
    const reflinkBytes = used(mnt) - before0;

    const t1 = performance.now();
    execFileSync('cp', ['--reflink=never', base, join(mnt, 'full-copy.raw')]);
    execFileSync('sync');
    const copyMs = performance.now() - t1;
    const copyBytes = used(mnt) - before0 - reflinkBytes;
    process.stderr.write(`reflink: 3 disks of ${DISK / MiB} MiB in ${reflinkMs.toFixed(1)} ms, +${(reflinkBytes / MiB).toFixed(1)} MiB; one full copy: ${copyMs.toFixed(0)} ms, +${(copyBytes / MiB).toFixed(0)} MiB\n`);
    assert.ok(reflinkBytes < 16 * MiB, `three reflinks took ${reflinkBytes} bytes`);
    assert.ok(copyBytes > DISK * 0.9, 'a real copy takes the whole size (the measure works)');
    assert.ok(reflinkMs < copyMs, 'reflinks are faster than one copy');

    // Writes land only where they are made.
    const original = readAt(base, 4096, 4096);
    writeAt(clone, 4096, Buffer.alloc(4096, 0xcc));
    writeAt(vm, 8192, Buffer.alloc(4096, 0xdd));
    assert.deepEqual(readAt(base, 4096, 4096), original);
    assert.deepEqual(readAt(vm, 4096, 4096), original);
    assert.deepEqual(readAt(frozen, 4096, 4096), original);
    assert.deepEqual(readAt(clone, 4096, 4096), Buffer.alloc(4096, 0xcc));
    assert.deepEqual(readAt(clone, 8192, 4096), readAt(base, 8192, 4096));
    assert.deepEqual(readAt(frozen, 8192, 4096), readAt(base, 8192, 4096));
  });

  test('where the filesystem cannot reflink, there is a clear error and no copy', async (t) => {
    if (!(await skipUnless(t))) return;
    const ext = mkdtempSync(join(tmpdir(), 'fcvm-noreflink-'));
    try {
      assert.equal(await canReflink(ext), statfsSync(ext).type === 0x9123683e /* btrfs */);
      if (await canReflink(ext)) return t.skip('the temporary directory is on a reflink filesystem');
      const src = join(ext, 'a');
      writeFileSync(src, randomBytes(4096));
      const dst = join(ext, 'b');
      await assert.rejects(reflink(src, dst), (e) => isFcvmError(e) && e.code === 'DISK_NO_REFLINK' && /cannot reflink/.test(e.message) && /--reflink-fs/.test(e.hint ?? ''));
      assert.equal(existsSync(dst), false);
      // Across filesystems it is refused too: no silent copy.
      await assert.rejects(reflink(base, join(ext, 'c')), (e) => isFcvmError(e) && e.code === 'DISK_NO_REFLINK');
      assert.equal(existsSync(join(ext, 'c')), false);
    } finally {
      rmSync(ext, { recursive: true, force: true });
    }
  });

  test('setup\'s reflink filesystem lives under the base dir, and is mounted again when needed', async (t) => {
    if (!(await skipUnless(t))) return;
    const baseDir = join(dir, 'base');
    mkdirSync(baseDir);
    const before0 = layoutFor(baseDir);
    assert.equal(before0.diskRoot, baseDir);
    const lines: string[] = [];
    await createReflinkFs(before0, 1024 * MiB, (l) => lines.push(l));
    try {
      const layout = layoutFor(baseDir);
      assert.equal(layout.diskRoot, join(baseDir, 'reflink'));
      assert.equal(layout.snapshots, join(baseDir, 'reflink', 'snapshots'));
      assert.ok(isMountPoint(layout.diskRoot));
      assert.equal(await canReflink(layout.diskRoot), true);
      assert.match(lines.join('\n'), /btrfs image .* mounted at/);
      execFileSync('umount', [layout.diskRoot]);
      assert.equal(isMountPoint(layout.diskRoot), false);
      await ensureReflinkFs(layout);
      assert.ok(isMountPoint(layout.diskRoot), 'mounted again');
      await assert.rejects(createReflinkFs(layout, MiB, () => {}), /exists already/);
    } finally {
      const root = join(baseDir, 'reflink');
      if (isMountPoint(root)) execFileSync('umount', [root]);
    }
  });
});
