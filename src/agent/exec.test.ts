import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execArgv, execProcessSpec, runtimeExitCode } from './exec.js';
import type { ExecStart } from '../protocol/api.js';

const req: ExecStart = { target: 'container', command: ['cat', '/f'], env: { A: '1' }, tty: false, stdoutChannel: 1, stderrChannel: 3 };
const target = { name: 'web', id: 'c0ffee' };

test('a plain container exec goes straight to crun with a process spec', () => {
  assert.deepEqual(execArgv(req, target, 'x1', '/run/fcvm/exec-x1.json'), ['crun', '--root', '/run/crun', 'exec', '--process', '/run/fcvm/exec-x1.json', 'c0ffee']);
});

test('the process spec is the container\'s own, with the command, env, marker and workdir', () => {
  const base = { args: ['httpd'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 }, capabilities: { bounding: ['CAP_KILL'] }, terminal: false };
  assert.deepEqual(execProcessSpec(base, { ...req, workdir: '/tmp' }, 'x1'), {
    ...base, args: ['cat', '/f'], env: ['PATH=/bin', 'A=1', 'FCVM_EXEC_ID=x1'], cwd: '/tmp', terminal: false,
  });
  assert.equal(execProcessSpec(base, req, 'x1').cwd, '/');
});

test('TTYs, named users and an unknown container ID use podman exec', () => {
  assert.deepEqual(execArgv({ ...req, tty: true }, target, 'x1').slice(0, 5), ['setsid', '-c', 'podman', 'exec', '--interactive']);
  assert.deepEqual(execArgv({ ...req, user: 'nobody' }, target, 'x1').slice(-5), ['--user', 'nobody', 'web', 'cat', '/f']);
  assert.deepEqual(execArgv(req, { name: 'web', id: undefined }, 'x1').slice(0, 2), ['podman', 'exec']);
  assert.deepEqual(execArgv(req, target, 'x1').slice(0, 2), ['podman', 'exec'], 'no process spec: podman');
});

test('an exec in the guest OS runs the command itself', () => {
  assert.deepEqual(execArgv({ ...req, target: 'vm' }, target, 'x1'), ['cat', '/f']);
  assert.deepEqual(execArgv({ ...req, target: 'vm', user: 'u' }, target, 'x1'), ['runuser', '-u', 'u', '--', 'cat', '/f']);
});

test('crun\'s 255 for a missing or unexecutable command becomes 127 or 126, as podman says', () => {
  assert.equal(runtimeExitCode(255, 'executable file `nope` not found in $PATH: No such file or directory\n'), 127);
  assert.equal(runtimeExitCode(255, 'exec container process `/x`: Permission denied\n'), 126);
  assert.equal(runtimeExitCode(255, 'Error: unable to find user nobody: no matching entries in passwd file\n'), 126);
  assert.equal(runtimeExitCode(255, 'my program failed\n'), 255);
  assert.equal(runtimeExitCode(3, ''), 3);
});
