import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fdSocketOps } from '../os/fd-socket.js';
import { testProgramBinary } from '../fuse/testing/relay-binary.js';
import { ExecSpawner, type SpawnedStdio } from './exec-spawner.js';

// The real spawner binary, compiled as `fcvm setup` compiles it, run on this host as a
// plain process (in the guest, crun exec starts it inside the container); the VM path
// is test/integration/exec.test.ts.
let bin = '';
let why: string | undefined;
let dir = '';
const logs: string[] = [];
let spawner: ExecSpawner | undefined;

before(async () => {
  const b = await testProgramBinary('exec-spawner');
  why = b.why;
  bin = b.path ?? '';
  dir = mkdtempSync(join(tmpdir(), 'fcvm-spawner-'));
  if (bin) spawner = await ExecSpawner.launch(['/proc/self/fd/3'], bin, (m) => logs.push(m));
});
after(() => {
  spawner?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ENV = ['PATH=/usr/bin:/bin', 'LANG=C'];
let n = 0;

/** Runs one exec through the spawner: its output, exit code and failure message. */
async function run(args: string[], opts: { env?: string[]; cwd?: string; stdin?: string } = {}): Promise<{ out: string; err: string; code: number; failure?: string }> {
  const id = (++n).toString(16).padStart(4, '0');
  let stdio: SpawnedStdio | undefined;
  const exit = new Promise<{ code: number; failure?: string }>((resolve) => {
    stdio = spawner!.spawn({ id, args, env: opts.env ?? ENV, cwd: opts.cwd ?? '/' }, { stdin: opts.stdin !== undefined }, (code, failure) => resolve({ code, ...(failure ? { failure } : {}) }));
  });
  const collect = (s: NodeJS.ReadableStream) => new Promise<string>((resolve) => {
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('utf8')));
    s.on('end', () => resolve(text));
  });
  const [out, err] = [collect(stdio!.stdout), collect(stdio!.stderr)];
  if (opts.stdin !== undefined) stdio!.stdin!.end(opts.stdin);
  return { ...(await exit), out: await out, err: await err };
}

const skip = (t: { skip: (m: string) => void }) => (why ? (t.skip(why), true) : false);

test('an exec gets its argv, env, cwd, stdout and stderr apart, and its exit code', async (t) => {
  if (skip(t)) return;
  const r = await run(['sh', '-c', 'echo "$A $(pwd)"; echo oops >&2; exit 7'], { env: [...ENV, 'A=one'], cwd: '/tmp' });
  assert.deepEqual(r, { out: 'one /tmp\n', err: 'oops\n', code: 7 });
});

test('stdin is forwarded with EOF; without stdin the process reads /dev/null', async (t) => {
  if (skip(t)) return;
  assert.equal((await run(['sh', '-c', 'cat; echo "[eof]"'], { stdin: 'a\nb\n' })).out, 'a\nb\n[eof]\n');
  assert.equal((await run(['sh', '-c', 'cat; echo "[eof]"'])).out, '[eof]\n');
});

test('commands that cannot start: 127 with crun\'s message when not found, 126 when not executable', async (t) => {
  if (skip(t)) return;
  const missing = await run(['no-such-command']);
  assert.equal(missing.code, 127);
  assert.equal(missing.err, 'executable file `no-such-command` not found in $PATH: No such file or directory\n');
  const file = join(dir, 'not-exec');
  writeFileSync(file, 'data');
  chmodSync(file, 0o644);
  assert.equal((await run([file])).code, 126);
  assert.equal((await run(['true'], { cwd: join(dir, 'nope') })).code, 127);
  assert.match((await run(['true'], { cwd: join(dir, 'nope') })).err, /^chdir to `.*nope`: No such file or directory\n$/);
  // A bare name searches the exec's own PATH, not the spawner's.
  const script = join(dir, 'only-here');
  writeFileSync(script, '#!/bin/sh\necho found\n');
  chmodSync(script, 0o755);
  assert.equal((await run(['only-here'], { env: [`PATH=${dir}:/bin`] })).out, 'found\n');
  assert.equal((await run(['only-here'])).code, 127);
});

test('a signalled process reports 128+N', async (t) => {
  if (skip(t)) return;
  assert.equal((await run(['sh', '-c', 'kill -TERM $$'])).code, 143);
  assert.equal((await run(['sh', '-c', 'kill -KILL $$'])).code, 137);
});

test('30 concurrent execs each get their own output and exit code', async (t) => {
  if (skip(t)) return;
  const runs = await Promise.all(Array.from({ length: 30 }, (_, i) => run(['sh', '-c', `echo run-${i}; echo err-${i} >&2; exit ${i}`])));
  runs.forEach((r, i) => assert.deepEqual(r, { out: `run-${i}\n`, err: `err-${i}\n`, code: i }));
});

test('the process gets only its three descriptors', async (t) => {
  if (skip(t)) return;
  const r = await run(['sh', '-c', 'ls /proc/$$/fd']);
  assert.deepEqual(r.out.trim().split('\n').sort(), ['0', '1', '2']);
});

test('a request the spawner cannot take is refused before anything starts', async (t) => {
  if (skip(t)) return;
  assert.throws(() => spawner!.spawn({ id: 'ab', args: ['echo', 'a\0b'], env: ENV, cwd: '/' }, { stdin: false }, () => {}), /cannot take/);
  assert.throws(() => spawner!.spawn({ id: 'AB', args: ['true'], env: ENV, cwd: '/' }, { stdin: false }, () => {}), /cannot take/);
  assert.throws(() => spawner!.spawn({ id: 'ab', args: ['true'], env: ['X='.padEnd(70_000, 'x')], cwd: '/' }, { stdin: false }, () => {}), /too big/);
  assert.equal((await run(['true'])).code, 0, 'still serving');
});

test('malformed requests straight on its socket are answered "failed" and it goes on', async (t) => {
  if (skip(t)) return;
  const ops = fdSocketOps();
  const [ctl, theirs] = ops.socketPair('seqpacket', false);
  const binFd = openSync(bin, 'r');
  const child = spawn('/proc/self/fd/3', [], { stdio: ['ignore', 'pipe', 'inherit', binFd, theirs] });
  closeSync(binFd);
  ops.close(theirs);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  assert.equal((await lines.next()).value, 'ready');
  const devnull = () => openSync('/dev/null', 'r+');
  const cases: [Buffer, number][] = [
    [Buffer.from('ab\0\0/\0'), 3], // too few fields
    [Buffer.from('ab\0\0/\x002\0true\0'), 3], // argc beyond the fields
    [Buffer.from('ab\0\0relative\x001\0true\0'), 3], // cwd not absolute
    [Buffer.from('ab\0x\0/\x001\0true\0'), 3], // unknown flags
    [Buffer.from('AB!\0\0/\x001\0true\0'), 3], // bad id
    [Buffer.from('ab\0\0/\x001\0true'), 3], // not NUL-terminated
    [Buffer.from('ab\0\0/\x001\0true\0'), 1], // one descriptor
    [Buffer.alloc(0), 0], // empty
  ];
  for (const [data, nfds] of cases) {
    const fds = Array.from({ length: nfds }, devnull);
    ops.send(ctl, data, fds);
    fds.forEach((f) => closeSync(f));
    assert.match(String((await lines.next()).value), /^failed - /, `case ${JSON.stringify(data.toString('latin1'))}`);
  }
  const fds = [devnull(), devnull(), devnull()];
  ops.send(ctl, Buffer.from('cd\0\0/\x001\0true\0'), fds);
  fds.forEach((f) => closeSync(f));
  assert.equal((await lines.next()).value, 'exited cd 0', 'a good request after all of them still runs');
  ops.close(ctl);
  const code = await new Promise((r) => child.on('exit', r));
  assert.equal(code, 0, 'it ends when the agent\'s socket closes');
});

test('when the spawner dies, its unfinished execs report 137 and it says it is gone', async (t) => {
  if (skip(t)) return;
  const own = await ExecSpawner.launch(['/proc/self/fd/3'], bin, () => {});
  const exit = new Promise<{ code: number; failure?: string }>((resolve) => {
    own.spawn({ id: 'ee', args: ['sleep', '2'], env: ENV, cwd: '/' }, { stdin: false }, (code, failure) => resolve({ code, ...(failure ? { failure } : {}) }));
  });
  own.stop();
  assert.deepEqual(await exit, { code: 137, failure: 'the exec spawner ended' });
  await own.ended;
  assert.equal(own.usable, false);
  assert.throws(() => own.spawn({ id: 'ef', args: ['true'], env: ENV, cwd: '/' }, { stdin: false }, () => {}), /cannot take/);
});

test('with a terminal, the process gets it as its controlling terminal in a session of its own', async (t) => {
  if (skip(t)) return;
  const { ptyOps } = await import('../os/libc.js');
  const { master, slave } = (await ptyOps()).openPair('/dev/ptmx');
  const exit = new Promise<number>((resolve) => {
    spawner!.spawn({ id: 'f0', args: ['sh', '-c', 's=$(cut -d" " -f6,7 /proc/$$/stat); [ "${s% *}" = $$ ] && [ "${s#* }" != 0 ] && echo tty-ok; exit 3'], env: ENV, cwd: '/' }, { tty: slave }, (code) => resolve(code));
  });
  closeSync(slave);
  const { ReadStream } = await import('node:tty');
  const out = new ReadStream(master);
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString('utf8')));
  await new Promise<void>((resolve) => {
    out.on('error', () => resolve());
    out.on('end', () => resolve());
  });
  out.destroy();
  assert.equal(await exit, 3);
  assert.match(text, /tty-ok/);
});
