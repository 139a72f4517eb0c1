import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logsOptionsFromFlags, stopOptionsFromFlags } from './lifecycle-options.js';

test('stop takes names, a PID or --all, and a grace period', () => {
  assert.deepEqual(stopOptionsFromFlags(['a', 'b'], { time: '3' }), { refs: [{ name: 'a' }, { name: 'b' }], graceSeconds: 3 });
  assert.deepEqual(stopOptionsFromFlags([], { pid: '42' }), { refs: [{ pid: 42 }], graceSeconds: undefined });
  assert.deepEqual(stopOptionsFromFlags([], { all: true, time: '0' }), { refs: 'all', graceSeconds: 0 });
  assert.throws(() => stopOptionsFromFlags([], {}), /no VM given/);
  assert.throws(() => stopOptionsFromFlags(['a'], { pid: '1' }), /only one of them/);
  assert.throws(() => stopOptionsFromFlags(['a'], { time: '-1' }), /invalid --time "-1"/);
  assert.throws(() => stopOptionsFromFlags(['../x'], {}), /invalid VM name/);
});

test('logs takes --tail N or all, and -f', () => {
  assert.deepEqual(logsOptionsFromFlags('web', { tail: '5', follow: true }), { name: 'web', follow: true, tail: 5 });
  assert.deepEqual(logsOptionsFromFlags('web', { tail: 'all' }), { name: 'web', follow: false, tail: undefined });
  assert.throws(() => logsOptionsFromFlags('web', { tail: 'x' }), /invalid --tail "x"/);
});
