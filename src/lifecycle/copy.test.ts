import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guestCpError } from './copy.js';

const id = '9f5ffe81' + 'a'.repeat(56);

test('podman cp\'s error in the guest becomes one line that names the VM, not the guest\'s container ID or scratch directory', () => {
  assert.equal(guestCpError(`Error: "/nonexist" could not be found on container ${id}: no such file or directory\n`, 'web'),
    '"/nonexist" could not be found on container web: no such file or directory');
  const two = 'Error: 2 errors occurred:\n\t* copying to container: copier: put: error creating "/proc/x": mkdir /proc/x: no such file or directory\n' +
    '\t* copying from host: copier: get: "/var/tmp/fcvm-cp.wLdjkN/cpin": io: read/write on closed pipe\n\n';
  assert.equal(guestCpError(two, 'web'), 'copying to container: copier: put: error creating "/proc/x": mkdir /proc/x: no such file or directory');
  assert.equal(guestCpError('Error: copier: get: "/var/tmp/fcvm-cp.wLdjkN/cpin": bad\n', 'web'), 'copier: get: "cpin": bad');
  assert.equal(guestCpError('tar: short read\n', 'web'), undefined);
  assert.equal(guestCpError('', 'web'), undefined);
});
