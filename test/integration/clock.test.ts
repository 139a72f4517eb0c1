/**
 * The guest's clock is the host's: after a cold boot (the RTC gives whole seconds), in
 * a snapshot's source after its pause (its clock stood still), and in a clone. Read
 * against the host's own clock: the guest prints its time (adjtimex) between two touches of a
 * volume file, whose times the host's file system stamps.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { assertNoLeftovers, fcvm, spawnFcvm, vmsUnavailableReason, waitFor } from '../helpers.js';

const SRC = 'it-clock';
const TAG = 'it-clock-snap';
/**
 * Besides the time a process start takes in the guest, which the two touches bound.
 * Before: 500-700 ms behind after a cold boot, 100-150 after a pause, about 200 in a
 * clone. A clone is read once it runs: its very first command may run before the agent
 * asked the host (agent/clock.ts), with the clock vm.restored carried, which is a
 * guest-side transit old (0-75 ms measured).
 */
const SLACK_MS = 60;
const CLONE = 'it-clock-clone';

const ls = async () => JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string }[];

/** The guest's clock against the host's, in ms: 0 when it is right, negative when it is behind. */
async function offsetMs(dir: string, run: (script: string) => Promise<{ exitCode?: number; stdout: string; stderr: string }>): Promise<number> {
  // busybox's date has no %N; its adjtimex shows the clock in microseconds.
  const r = await run('touch /d/t1; adjtimex | grep time.tv_; touch /d/t2');
  assert.equal(r.exitCode, 0, r.stderr);
  const field = (name: string) => BigInt(r.stdout.match(new RegExp(`time\\.${name}:\\s*(\\d+)`))?.[1] ?? assert.fail(`no ${name} in: ${r.stdout}`));
  const guestNs = field('tv_sec') * 1_000_000_000n + field('tv_usec') * 1000n;
  const [t1, t2] = ['t1', 't2'].map((f) => statSync(join(dir, f), { bigint: true }).mtimeNs);
  // Right: t1 <= guest <= t2. Behind: guest < t1; ahead: guest > t2.
  if (guestNs < t1!) return Number((guestNs - t1!) / 1_000_000n);
  if (guestNs > t2!) return Number((guestNs - t2!) / 1_000_000n);
  return 0;
}

describe('the guest clock is the host\'s', { concurrency: false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-it-clock-'));
  let source: ResultPromise | undefined;
  const skip = vmsUnavailableReason();

  before(async () => {
    if (skip) return void process.stderr.write(`\n*** SKIPPED clock: ${skip} ***\n`);
    await fcvm(['snapshots', 'delete', TAG]);
    source = spawnFcvm(['podman', 'run', '--name', SRC, '--stop-timeout', '1', '--no-snapshot', '-v', `${dir}:/d`, 'localhost/bb', '--', 'sleep', 'infinity']);
    await waitFor(async () => (await ls()).some((v) => v.name === SRC && ['running', 'healthy'].includes(v.status)), 180_000, `${SRC} running`);
  });

  after(async () => {
    if (!skip) {
      source?.kill('SIGTERM');
      await source;
      await fcvm(['snapshots', 'delete', TAG]);
    }
    rmSync(dir, { recursive: true, force: true });
    if (!skip) assertNoLeftovers();
  });

  test('after a cold boot, in a snapshot\'s source after its pause, and in its clone', async (t) => {
    if (skip) return t.skip(skip);
    const inSource = (script: string) => fcvm(['exec', SRC, '--', 'sh', '-c', script]);
    const cold = await offsetMs(dir, inSource);
    assert.ok(Math.abs(cold) <= SLACK_MS, `after a cold boot the guest is ${cold} ms off`);
    const snap = await fcvm(['snapshot', 'create', SRC, '--tag', TAG, '--no-trim']);
    assert.equal(snap.exitCode, 0, snap.stderr);
    const paused = await offsetMs(dir, inSource);
    assert.ok(Math.abs(paused) <= SLACK_MS, `after the snapshot's pause the source is ${paused} ms off`);
    // Let the snapshot's clock fall behind the host's first.
    await new Promise((r) => setTimeout(r, 1500));
    const c = spawnFcvm(['snapshot', 'run', '--snapshot', TAG, '--name', CLONE]);
    try {
      await waitFor(async () => (await ls()).some((v) => v.name === CLONE && ['running', 'healthy'].includes(v.status)), 120_000, `${CLONE} running`);
      const clone = await offsetMs(dir, (script) => fcvm(['exec', CLONE, '--', 'sh', '-c', script]));
      assert.ok(Math.abs(clone) <= SLACK_MS, `a clone is ${clone} ms off`);
    } finally {
      c.kill('SIGTERM');
      await c.catch(() => {});
    }
  });
});
