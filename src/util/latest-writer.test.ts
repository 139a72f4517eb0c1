import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatestWriter } from './latest-writer.js';

test('a burst of values is written as the first and the last', async () => {
  const written: number[] = [];
  const w = new LatestWriter<number>(async (v) => {
    await new Promise((r) => setTimeout(r, 5));
    written.push(v);
  });
  for (let i = 0; i < 10_000; i++) w.push(i);
  await w.flushed();
  assert.deepEqual(written, [0, 9999]);
  w.push(42);
  await w.flushed();
  assert.deepEqual(written, [0, 9999, 42]);
});

test('a failed write does not stop later ones', async () => {
  const written: number[] = [];
  const w = new LatestWriter<number>(async (v) => {
    if (v === 1) throw new Error('disk full');
    written.push(v);
  });
  w.push(1);
  await w.flushed();
  w.push(2);
  await w.flushed();
  assert.deepEqual(written, [2]);
});
