import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logsOptionsFromFlags, parseLogTime, removeOptionsFromFlags, stopOptionsFromFlags } from './lifecycle-options.js';

test('stop takes names, a PID or --all, and a grace period', () => {
  assert.deepEqual(stopOptionsFromFlags(['a', 'b'], { time: '3' }), { refs: [{ name: 'a' }, { name: 'b' }], graceSeconds: 3 });
  assert.deepEqual(stopOptionsFromFlags([], { pid: '42' }), { refs: [{ pid: 42 }], graceSeconds: undefined });
  assert.deepEqual(stopOptionsFromFlags([], { all: true, time: '0' }), { refs: 'all', graceSeconds: 0 });
  assert.throws(() => stopOptionsFromFlags([], {}), /no VM given/);
  assert.throws(() => stopOptionsFromFlags(['a'], { pid: '1' }), /only one of them/);
  assert.throws(() => stopOptionsFromFlags(['a'], { time: '-1' }), /invalid --time "-1"/);
  assert.throws(() => stopOptionsFromFlags(['../x'], {}), /invalid VM name/);
});

test('logs takes --tail N or all, -f, -t, --since and --until', () => {
  assert.deepEqual(logsOptionsFromFlags(['web'], { tail: '5', follow: true }), { names: ['web'], follow: true, tail: 5, timestamps: false });
  assert.deepEqual(logsOptionsFromFlags(['web'], { tail: 'all' }), { names: ['web'], follow: false, tail: undefined, timestamps: false });
  assert.deepEqual(logsOptionsFromFlags(['web'], { tail: '-1', timestamps: true }), { names: ['web'], follow: false, tail: undefined, timestamps: true });
  assert.throws(() => logsOptionsFromFlags(['web'], { tail: 'x' }), /invalid --tail "x"/);
  const now = Date.parse('2026-12-07T10:00:00Z');
  assert.deepEqual(logsOptionsFromFlags(['web'], { since: '10m', until: '1m30s' }, now),
    { names: ['web'], follow: false, tail: undefined, timestamps: false, since: now - 600_000, until: now - 90_000 });
  assert.throws(() => logsOptionsFromFlags(['web'], { since: 'yesterday' }, now), /invalid --since "yesterday": not a time/);
});

test('log times: durations back from now, Unix times, and dates in the host zone unless one is given', () => {
  const now = Date.parse('2026-12-07T10:00:00Z');
  assert.equal(parseLogTime('--since', '1h', now), now - 3_600_000);
  assert.equal(parseLogTime('--since', '1700000000', now), 1_700_000_000_000);
  assert.equal(parseLogTime('--since', '1700000000.25', now), 1_700_000_000_250);
  assert.equal(parseLogTime('--since', '2026-12-07T09:30:00Z', now), Date.parse('2026-12-07T09:30:00Z'));
  assert.equal(parseLogTime('--since', '2026-12-07T09:30:00.5+01:00', now), Date.parse('2026-12-07T08:30:00.500Z'));
  assert.equal(parseLogTime('--since', '2026-12-07T09:30', now), new Date(2026, 11, 7, 9, 30).getTime());
  assert.equal(parseLogTime('--since', '2026-12-07', now), new Date(2026, 11, 7).getTime());
  for (const bad of ['', 'now', '10', '2026-13-45', '10 m', '2026-12-07T25:00:00Z']) {
    if (bad === '10') continue; // a Unix time
    assert.throws(() => parseLogTime('--until', bad, now), /invalid --until/, bad);
  }
});

test('rm takes names or --all, not both and not neither', () => {
  assert.deepEqual(removeOptionsFromFlags([], { all: true, force: true }), { names: [], force: true, ignore: false, graceSeconds: undefined, all: true });
  assert.throws(() => removeOptionsFromFlags(['web'], { all: true }), /give VM names or --all, not both/);
  assert.throws(() => removeOptionsFromFlags([], {}), /no VM named to remove/);
});
