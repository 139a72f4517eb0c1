import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseDirFault, machineFault } from './os-fault.js';

test('full and read-only filesystems are told apart from other failures, through causes and tools\' messages', () => {
  const enospc = Object.assign(new Error('write failed'), { code: 'ENOSPC' });
  assert.equal(machineFault(enospc, 'writing', '/b')?.code, 'DISK_FULL');
  assert.equal(machineFault(new Error('outer', { cause: enospc }), 'x', '/b')?.code, 'DISK_FULL');
  assert.equal(machineFault(new Error('"apt-get download" failed: Error writing to file - write (28: No space left on device)'), 'x', '/b')?.code, 'DISK_FULL');
  assert.equal(machineFault(Object.assign(new Error('open'), { code: 'EROFS' }), 'x', '/b')?.code, 'READ_ONLY');
  assert.equal(machineFault(new Error('some other failure'), 'x', '/b'), undefined);
  assert.match(machineFault(enospc, 'downloading the kernel package', '/var/lib/fcvm')!.oneLine(), /^no space left on the filesystem of \/var\/lib\/fcvm while downloading the kernel package\. Free some space/);
});

test('permission denied inside the base directory says whose it is and what to do; elsewhere it is no such fault', () => {
  const denied = (path: string, code = 'EACCES') => Object.assign(new Error(`${code}: permission denied, mkdir '${path}'`), { code, path });
  const e = baseDirFault(denied('/var/lib/fcvm-x/cache/images'), '/var/lib/fcvm-x');
  assert.equal(e?.code, 'BASE_DIR_DENIED');
  assert.match(e!.oneLine(), /^permission denied at \/var\/lib\/fcvm-x\/cache\/images: the base directory \/var\/lib\/fcvm-x is not this user's \(uid \d+\)\. Use a base directory of your own: unset FCVM_BASE_DIR/);
  assert.equal(baseDirFault(denied('/var/lib/fcvm-x', 'EPERM'), '/var/lib/fcvm-x')?.code, 'BASE_DIR_DENIED');
  assert.equal(baseDirFault(denied('/var/lib/fcvm-xy/state'), '/var/lib/fcvm-x'), undefined);
  assert.equal(baseDirFault(denied('/dev/kvm'), '/var/lib/fcvm-x'), undefined);
  assert.equal(baseDirFault(Object.assign(new Error('x'), { code: 'ENOENT', path: '/var/lib/fcvm-x/a' }), '/var/lib/fcvm-x'), undefined);
});
