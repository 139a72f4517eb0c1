import { test } from 'node:test';
import assert from 'node:assert/strict';
import { awaitReports, MAX_MS, NO_REPORT_MS, POLL_MS, type TrimWait } from './trim.js';

const MiB = 2 ** 20;

/** A clock that only moves when the wait sleeps, and RAM held as a function of time. */
function scripted(heldAt: (ms: number) => number) {
  let now = 0;
  const clock: TrimWait = { now: () => now, sleep: async (ms) => void (now += ms) };
  return { clock, held: async () => heldAt(now) };
}

test('a guest that gives nothing back is waited for NO_REPORT_MS only', async () => {
  const { clock, held } = scripted(() => 200 * MiB);
  const t = await awaitReports(held, 200 * MiB, clock);
  assert.equal(t.after, 200 * MiB);
  assert.ok(t.ms >= NO_REPORT_MS && t.ms < NO_REPORT_MS + 2 * POLL_MS, `${t.ms} ms`);
});

test('the wait ends when the second report pass is over, not at the first', async () => {
  // Passes at 2 s (200 -> 160 MiB over 300 ms) and 4.5 s (160 -> 150 MiB), a third at 7 s never waited for.
  const { clock, held } = scripted((ms) => (ms < 2000 ? 200 : ms < 2300 ? 180 : ms < 4500 ? 160 : ms < 7000 ? 150 : 140) * MiB);
  const t = await awaitReports(held, 200 * MiB, clock);
  assert.equal(t.after, 150 * MiB);
  assert.ok(t.ms > 4500 && t.ms < 5300, `${t.ms} ms`);
});

test('one pass and then nothing: the wait ends NO_REPORT_MS after it', async () => {
  const { clock, held } = scripted((ms) => (ms < 1000 ? 200 : 170) * MiB);
  const t = await awaitReports(held, 200 * MiB, clock);
  assert.equal(t.after, 170 * MiB);
  assert.ok(t.ms > 1000 + NO_REPORT_MS && t.ms < MAX_MS, `${t.ms} ms`);
});

test('pages given back without end do not hold the snapshot past MAX_MS; a guest touching pages is not a report', async () => {
  const { clock, held } = scripted((ms) => (300 - ms / 50) * MiB);
  const t = await awaitReports(held, 300 * MiB, clock);
  assert.ok(t.ms >= MAX_MS && t.ms < MAX_MS + 2 * POLL_MS, `${t.ms} ms`);
  // RAM that grows (the guest goes on running) never counts as a pass.
  const growing = scripted((ms) => (100 + ms / 100) * MiB);
  const g = await awaitReports(growing.held, 100 * MiB, growing.clock);
  assert.ok(g.ms >= NO_REPORT_MS && g.ms < NO_REPORT_MS + 2 * POLL_MS, `${g.ms} ms`);
});
