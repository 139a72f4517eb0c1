import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { diskBySerial, prefetchResult, pullArgs } from './image.js';

test('a disk is found by its serial (QEMU), or by the command line where the VMM sets none (Firecracker)', () => {
  const sys = mkdtempSync(join(tmpdir(), 'fcvm-sysblock-'));
  try {
    for (const [dev, serial] of [['vda', '2049123'], ['vdb', '2049124']] as const) {
      mkdirSync(join(sys, dev));
      writeFileSync(join(sys, dev, 'serial'), serial);
    }
    assert.equal(diskBySerial('image', sys, 'console=ttyS0 fcvm.disk.root=vda fcvm.disk.image=vdb'), '/dev/vdb');
    assert.equal(diskBySerial('image', sys, 'console=ttyS0'), undefined);
    assert.equal(diskBySerial('image', sys, 'fcvm.disk.image=vdz'), undefined, 'a named disk that does not exist is not made up');
    writeFileSync(join(sys, 'vdb', 'serial'), 'image');
    assert.equal(diskBySerial('image', sys, 'console=ttyS0'), '/dev/vdb');
  } finally {
    rmSync(sys, { recursive: true, force: true });
  }
});

test('a pull names its files, never the credentials, and turns TLS checks off only when asked', () => {
  const plain = pullArgs({ kind: 'pull', ref: 'reg:5000/app:1' }, '/run/fcvm/pull-x');
  assert.deepEqual(plain, ['pull', '--quiet', 'reg:5000/app:1']);
  const all = pullArgs({
    kind: 'pull', ref: 'reg:5000/app:1', tlsVerify: false,
    auth: { registry: 'reg:5000', auth: Buffer.from('u:secret').toString('base64') },
    certs: [{ name: 'ca.crt', pem: '-----BEGIN CERTIFICATE-----' }],
  }, '/run/fcvm/pull-x');
  assert.deepEqual(all, ['pull', '--quiet', '--tls-verify=false', '--cert-dir=/run/fcvm/pull-x/certs', '--authfile=/run/fcvm/pull-x/auth.json', 'reg:5000/app:1']);
  assert.ok(!all.join(' ').includes('secret') && !all.join(' ').includes(Buffer.from('u:secret').toString('base64')));
});

test('the agent waits for the image prefetch while its podman load runs, past the wait for one whose PID is unknown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-prefetch-'));
  const files = { log: join(dir, 'log'), rc: join(dir, 'rc'), pid: join(dir, 'pid') };
  const limits = { waitMs: 100, runningMaxMs: 60_000, resultGraceMs: 300 };
  const quiet = process.stdout.write;
  try {
    writeFileSync(files.log, 'Loaded image: x\n');
    // A load that runs longer than waitMs: the result is waited for, not loaded again.
    const load = spawn('sleep', ['0.6']);
    writeFileSync(files.pid, `${load.pid}\n`);
    load.on('exit', () => writeFileSync(files.rc, '0\n'));
    const t0 = Date.now();
    assert.deepEqual(await prefetchResult(files, limits), { ok: true, log: 'Loaded image: x\n' });
    assert.ok(Date.now() - t0 >= 500, 'returned before the load ended');
    // A load that ended without a result: loaded again, after the grace for its result.
    rmSync(files.rc);
    process.stdout.write = (() => true) as typeof process.stdout.write;
    assert.equal(await prefetchResult(files, limits), undefined);
    // No PID file (an older guest): waitMs, then loaded again.
    rmSync(files.pid);
    const t1 = Date.now();
    assert.equal(await prefetchResult(files, limits), undefined);
    assert.ok(Date.now() - t1 >= 100);
  } finally {
    process.stdout.write = quiet;
    rmSync(dir, { recursive: true, force: true });
  }
});
