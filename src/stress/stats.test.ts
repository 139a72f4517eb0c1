import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentile, seconds } from './stats.js';

test('percentiles by nearest rank', () => {
  const v = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
  assert.equal(percentile(v, 50), 5);
  assert.equal(percentile(v, 90), 9);
  assert.equal(percentile(v, 100), 10);
  assert.equal(percentile([7], 90), 7);
  assert.equal(percentile([], 50), undefined);
  assert.equal(seconds(12345), '12.3s');
});
