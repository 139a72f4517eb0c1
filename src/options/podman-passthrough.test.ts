import { test } from 'node:test';
import assert from 'node:assert/strict';
import { podmanPassthroughWords } from './podman-passthrough.js';
import { isFcvmError } from '../errors/fcvm-error.js';

test('each flag becomes one word for the guest\'s podman, in a fixed order', () => {
  assert.deepEqual(podmanPassthroughWords({}), []);
  assert.deepEqual(podmanPassthroughWords({
    readOnly: 'true', readOnlyTmpfs: 'false', tmpfs: ['/scratch:size=8m,mode=1777', '/cache'], capDrop: ['ALL'], capAdd: ['net_bind_service'],
    securityOpt: ['no-new-privileges'], sysctl: ['kernel.msgmax=8192'], ulimit: ['nofile=256:512'], groupAdd: ['1234'],
    shmSize: '32m', umask: '0077', unsetenv: ['container'], unsetenvAll: true,
  }), [
    '--read-only', '--read-only-tmpfs=false', '--tmpfs=/scratch:size=8m,mode=1777', '--tmpfs=/cache', '--cap-add=net_bind_service', '--cap-drop=ALL',
    '--security-opt=no-new-privileges', '--sysctl=kernel.msgmax=8192', '--ulimit=nofile=256:512', '--group-add=1234',
    '--shm-size=32m', '--umask=0077', '--unsetenv=container', '--unsetenv-all',
  ]);
});

test('a bad value is refused in one line that names the flag and shows a good one', () => {
  const refused = (flags: object, re: RegExp) =>
    assert.throws(() => podmanPassthroughWords(flags), (e) => isFcvmError(e) && e.code === 'INVALID_OPTION' && re.test(e.message) && !e.message.includes('\n'));
  refused({ readOnly: 'yes' }, /invalid --read-only "yes": not true or false/);
  refused({ tmpfs: ['scratch'] }, /invalid --tmpfs "scratch"/);
  refused({ tmpfs: ['/a b'] }, /invalid --tmpfs/);
  refused({ capAdd: ['NET ADMIN'] }, /invalid --cap-add/);
  refused({ securityOpt: ['seccomp=/etc/profile.json'] }, /invalid --security-opt "seccomp=\/etc\/profile\.json"/);
  refused({ sysctl: ['kernel.msgmax'] }, /invalid --sysctl/);
  refused({ ulimit: ['nofile=lots'] }, /invalid --ulimit/);
  refused({ umask: '999' }, /invalid --umask "999"/);
  refused({ shmSize: '1 g' }, /invalid --shm-size/);
  refused({ unsetenv: ['A-B'] }, /invalid --unsetenv/);
  refused({ groupAdd: ['--privileged'] }, /invalid --group-add/);
  refused({ capDrop: Array(65).fill('ALL') }, /given more than 64 times/);
});
