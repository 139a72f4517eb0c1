import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { refineClock } from './clock.js';
import { FEATURE_HOST_CLOCK } from '../protocol/messages.js';

/** A host whose clock is `aheadMs` ahead of this process's, answering after `delays[i]` ms (the last one after that). */
function host(aheadMs: number, delays: number[]) {
  let calls = 0;
  const conn = {
    features: [FEATURE_HOST_CLOCK],
    isOpen: true,
    calls: () => calls,
    request: async () => {
      const d = delays[Math.min(calls++, delays.length - 1)]!;
      // The host reads its clock half-way: the answer is as old as the way back.
      await sleep(d / 2);
      const clockMs = Date.now() + aheadMs;
      await sleep(d / 2);
      return { clockMs };
    },
  };
  return conn;
}

test('a quick round trip sets the clock once, with no later asking', async () => {
  const conn = host(500, [2]);
  const set: { value: number; at: number }[] = [];
  await refineClock(conn as never, [30], async (v) => void set.push({ value: v, at: Date.now() }));
  assert.equal(conn.calls(), 1);
  assert.equal(set.length, 1);
  assert.ok(Math.abs(set[0]!.value - (set[0]!.at + 500)) <= 20, `set ${set[0]!.value - set[0]!.at} ms ahead, not 500`);
});

test('only slow round trips: set from the best, then asked again later until one is quick', async () => {
  // Five slow answers (a busy guest), then quick ones.
  const conn = host(500, [200, 200, 200, 200, 200, 2]);
  const set: { value: number; at: number }[] = [];
  await refineClock(conn as never, [30, 30], async (v) => void set.push({ value: v, at: Date.now() }));
  assert.equal(conn.calls(), 6, 'five round trips, then one more after the wait');
  assert.equal(set.length, 2);
  const last = set[1]!;
  assert.ok(Math.abs(last.value - (last.at + 500)) <= 20, `set ${last.value - last.at} ms ahead, not 500`);
});

test('no asking again once the connection closed', async () => {
  const conn = host(0, [200]);
  const done = refineClock(conn as never, [50, 50], async () => {});
  await sleep(10);
  conn.isOpen = false;
  await done;
  assert.equal(conn.calls(), 5, 'the first round only');
});
