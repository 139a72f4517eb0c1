import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { assertNoLeftovers, CLI, ctrLines, fcvm, vmsAvailable } from '../helpers.js';

test('exit code, env and separate stdout/stderr reach the host', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await fcvm(['podman', 'run', '--name', 'it-exit7', '--cpu', '2', '--mem', '512', '--env', 'GREETING=hi,WHO=me',
    'localhost/bb', '--', 'sh', '-c', 'echo $GREETING $WHO; echo to-stderr >&2; echo second; echo dev-out > /dev/stdout; echo dev-err > /dev/stderr; exit 7']);
  assert.equal(r.exitCode, 7, r.stderr);
  // /dev/stdout and /dev/stderr open (pipes, as conmon gives them; a socket answers ENXIO): nginx's image logs there.
  assert.deepEqual(ctrLines(r, 'out'), ['hi me', 'second', 'dev-out']);
  assert.deepEqual(ctrLines(r, 'err'), ['to-stderr', 'dev-err']);
  // As podman run's: the container's stdout is fcvm's, raw, without -i too.
  assert.equal(r.stdout, 'hi me\nsecond\ndev-out\n');
  assert.doesNotMatch(r.stderr, /\[ctr:/);
  assertNoLeftovers();
  const ls = await fcvm(['ls', '--json']);
  assert.deepEqual(JSON.parse(ls.stdout), []);
});

test('output to a reader that starts late arrives whole: the exit waits behind it', async (t) => {
  if (!vmsAvailable(t)) return;
  // The container writes 1.6 MB at once and ends, while part of it still waits in the
  // guest for the reader's window; the reader takes its first byte, the rest 8 s later.
  const r = await execa('bash', ['-c', `"${process.execPath}" -- "${CLI}" podman run --rm localhost/bb -- head -c 1600000 /dev/zero | (dd bs=1 count=1 of=/dev/null status=none; sleep 8; wc -c)`], { reject: false, timeout: 240_000 });
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.equal(String(r.stdout).trim(), '1599999');
  assertNoLeftovers();
});

test('a reader that quits early (| head -1) ends the run within seconds, with 141', async (t) => {
  if (!vmsAvailable(t)) return;
  // PID 1 ignores SIGPIPE and SIGTERM (no handlers): the stop's grace once ran its full 10 s.
  const r = await execa('bash', ['-c', `( "${process.execPath}" -- "${CLI}" podman run --rm localhost/bb -- seq 1 100000000; rc=$?; echo "end $(date +%s%N) $rc" >&2 ) | ( head -1; echo "head $(date +%s%N)" >&2 )`], { reject: false, timeout: 240_000 });
  const at = (what: string) => Number(new RegExp(`^${what} (\\d+)`, 'm').exec(String(r.stderr))?.[1]) / 1e6;
  assert.equal(String(r.stdout), '1', String(r.stderr));
  assert.match(String(r.stderr), /^end \d+ 141$/m);
  const ms = at('end') - at('head');
  assert.ok(ms > 0 && ms < 6000, `fcvm ended ${Math.round(ms)} ms after its reader`);
  assertNoLeftovers();
});

test('exit 0, and the image CMD runs when no command is given', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await fcvm(['podman', 'run', 'localhost/bb-cmd']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(ctrLines(r, 'out'), ['hello from the image CMD']);
  assertNoLeftovers();
});

test('--cmd overrides the image CMD, split like a shell', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await fcvm(['podman', 'run', '--cmd', `sh -c 'echo "over ride"; exit 3'`, 'localhost/bb-cmd']);
  assert.equal(r.exitCode, 3, r.stderr);
  assert.deepEqual(ctrLines(r, 'out'), ['over ride']);
  assertNoLeftovers();
});

test('--privileged lets the container create and use device nodes; without it, it cannot', async (t) => {
  if (!vmsAvailable(t)) return;
  const script = 'mknod /tmp/null c 1 3 && echo data > /tmp/null && echo device-ok';
  const priv = await fcvm(['podman', 'run', '--privileged', 'localhost/bb', '--', 'sh', '-c', script]);
  assert.equal(priv.exitCode, 0, priv.stderr);
  assert.deepEqual(ctrLines(priv, 'out'), ['device-ok']);
  const plain = await fcvm(['podman', 'run', 'localhost/bb', '--', 'sh', '-c', script]);
  assert.notEqual(plain.exitCode, 0, plain.stderr);
  assert.deepEqual(ctrLines(plain, 'out'), []);
  assertNoLeftovers();
});

test('a command that does not exist exits 127 with podman\'s message', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await fcvm(['podman', 'run', 'localhost/bb', '--', 'no-such-command']);
  assert.equal(r.exitCode, 127, r.stderr);
  assert.match(ctrLines(r, 'err').join('\n'), /no-such-command/);
  assertNoLeftovers();
});
