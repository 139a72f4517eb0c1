import { test } from 'node:test';
import assert from 'node:assert/strict';
import { machineFault } from './os-fault.js';

test('full and read-only filesystems are told apart from other failures, through causes and tools\' messages', () => {
  const enospc = Object.assign(new Error('write failed'), { code: 'ENOSPC' });
  assert.equal(machineFault(enospc, 'writing', '/b')?.code, 'DISK_FULL');
  assert.equal(machineFault(new Error('outer', { cause: enospc }), 'x', '/b')?.code, 'DISK_FULL');
  assert.equal(machineFault(new Error('"apt-get download" failed: Error writing to file - write (28: No space left on device)'), 'x', '/b')?.code, 'DISK_FULL');
  assert.equal(machineFault(Object.assign(new Error('open'), { code: 'EROFS' }), 'x', '/b')?.code, 'READ_ONLY');
  assert.equal(machineFault(new Error('some other failure'), 'x', '/b'), undefined);
  assert.match(machineFault(enospc, 'downloading the kernel package', '/var/lib/fcvm')!.oneLine(), /^no space left on the filesystem of \/var\/lib\/fcvm while downloading the kernel package\. Free some space/);
});
