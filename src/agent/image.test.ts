import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskBySerial, pullArgs } from './image.js';

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
