import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logStamp, RotatingLog } from './vm-log.js';
import { EXIT_MARK, exitCodeInLog, lastLines, podmanLogTime, routeLine, showLog, splitStamp } from './read-log.js';

test('container lines lose their prefix and keep their stream; the supervisor\'s go to stderr', () => {
  assert.deepEqual(routeLine('[ctr:out] hello'), { stream: 'stdout', text: 'hello' });
  assert.deepEqual(routeLine('[ctr:err] oops'), { stream: 'stderr', text: 'oops' });
  assert.deepEqual(routeLine('fcvm: could not pull'), { stream: 'stderr', text: 'fcvm: could not pull' });
});

test('the exit mark is never printed, and tells the exit code of the log\'s last container', async () => {
  assert.equal(routeLine(`${EXIT_MARK}3`), undefined);
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-log-'));
  try {
    const path = join(dir, 'vm.log');
    const log = new RotatingLog(path);
    // Container output cannot pass for the mark: lines end at "\n" only.
    log.write('[ctr:out] one\r[ctr:exit] 0\u2028[ctr:exit] 1\n[ctr:out] two\n');
    assert.equal(exitCodeInLog(path), undefined);
    log.write(`${EXIT_MARK}3\nfcvm: a last warning\n`);
    log.close();
    assert.equal(exitCodeInLog(path), 3);
    assert.equal(exitCodeInLog(join(dir, 'none.log')), undefined);
    const got = { stdout: '', stderr: '' };
    const sink = (k: 'stdout' | 'stderr') => ({ write: (s: string | Uint8Array) => ((got[k] += String(s)), true) });
    await showLog(path, { tail: 2, follow: false, alive: () => false, interrupt: new AbortController().signal }, { stdout: sink('stdout'), stderr: sink('stderr') });
    assert.deepEqual(got, { stdout: 'two\n', stderr: 'fcvm: a last warning\n' });
    got.stdout = '';
    got.stderr = '';
    await showLog(path, { tail: 3, follow: false, alive: () => false, interrupt: new AbortController().signal }, { stdout: sink('stdout'), stderr: sink('stderr') });
    assert.equal(got.stdout, 'one\r[ctr:exit] 0\u2028[ctr:exit] 1\ntwo\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the last N lines', () => {
  assert.equal(lastLines('a\nb\nc\n', 2), 'b\nc\n');
  assert.equal(lastLines('a\nb\nc', 2), 'b\nc');
  assert.equal(lastLines('a\nb\n', 5), 'a\nb\n');
  assert.equal(lastLines('a\n', 0), '');
});

test('a followed log is read across a rotation, to the end, once its VM is gone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-log-'));
  try {
    const path = join(dir, 'vm.log');
    // Small enough to rotate several times; big enough for the lines written between two reads (each with its time).
    const log = new RotatingLog(path, 500);
    log.write('[ctr:out] first\n');
    let alive = true;
    const got = { stdout: '', stderr: '' };
    const shown = showLog(path, { tail: undefined, follow: true, alive: () => alive, interrupt: new AbortController().signal }, {
      stdout: { write: (s: string) => (got.stdout += s) },
      stderr: { write: (s: string) => (got.stderr += s) },
    });
    for (let i = 0; i < 30; i++) {
      log.write(`[ctr:out] line ${i}\n`);
      if (i % 5 === 0) await new Promise((r) => setTimeout(r, 250));
    }
    log.write('fcvm: the end\n');
    await new Promise((r) => setTimeout(r, 300));
    alive = false;
    await shown;
    assert.deepEqual(got.stdout.split('\n').filter(Boolean), ['first', ...Array.from({ length: 30 }, (_, i) => `line ${i}`)]);
    assert.equal(got.stderr, 'fcvm: the end\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('each line is stamped with its time; -t prints it as podman does; --since and --until select by it', async () => {
  assert.equal(logStamp(Date.parse('2026-12-07T09:30:00.123Z') + 0.4567), '2026-12-07T09:30:00.123456000Z ');
  assert.deepEqual(splitStamp('2026-12-07T09:30:00.123456000Z [ctr:out] hi'), { at: { ms: Date.parse('2026-12-07T09:30:00.123Z') + 0.456, nanos: '123456000' }, rest: '[ctr:out] hi' });
  assert.deepEqual(splitStamp('[ctr:out] from an older fcvm'), { rest: '[ctr:out] from an older fcvm' });
  // In UTC whatever the host's zone, as podman 4.3's (measured with TZ set).
  assert.equal(podmanLogTime({ ms: Date.parse('2026-12-07T09:30:00.120Z'), nanos: '120000000' }), '2026-12-07T09:30:00.12Z');
  assert.equal(podmanLogTime({ ms: Date.parse('2026-12-07T09:30:00Z'), nanos: '000000000' }), '2026-12-07T09:30:00Z');
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-log-'));
  try {
    const path = join(dir, 'vm.log');
    const log = new RotatingLog(path);
    // A line written in two pieces has one stamp; one chunk of two lines has two.
    log.write('[ctr:out] early');
    log.write(' part\n[ctr:err] early too\n');
    await new Promise((r) => setTimeout(r, 15));
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 15));
    log.write('[ctr:out] late\n');
    log.close();
    const text = readFileSync(path, 'utf8');
    assert.match(text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \[ctr:out\] early part\n\S+Z \[ctr:err\] early too\n\S+Z \[ctr:out\] late\n$/);
    const show = async (o: { since?: number; until?: number; timestamps?: boolean }) => {
      const got = { stdout: '', stderr: '' };
      const sink = (k: 'stdout' | 'stderr') => ({ write: (s: string | Uint8Array) => ((got[k] += String(s)), true) });
      await showLog(path, { tail: undefined, follow: false, alive: () => false, interrupt: new AbortController().signal, ...o }, { stdout: sink('stdout'), stderr: sink('stderr') });
      return got;
    };
    assert.deepEqual(await show({}), { stdout: 'early part\nlate\n', stderr: 'early too\n' });
    assert.deepEqual(await show({ since: t0 }), { stdout: 'late\n', stderr: '' });
    assert.deepEqual(await show({ until: t0 }), { stdout: 'early part\n', stderr: 'early too\n' });
    assert.match((await show({ timestamps: true })).stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d) early part\n\S+ late\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
