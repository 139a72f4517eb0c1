import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskBySerial } from './image.js';

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
