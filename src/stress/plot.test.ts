import { test } from 'node:test';
import assert from 'node:assert/strict';
import { timeToHealthySvg } from './plot.js';

test('the plot has a bar per healthy clone, a mark per failure, and p50/p90 lines', () => {
  const svg = timeToHealthySvg([
    { index: 0, batch: 0, ms: 2000 }, { index: 1, batch: 0, ms: 3000 }, { index: 2, batch: 1, ms: undefined }, { index: 3, batch: 1, ms: 5000 },
  ], 'stress <test>');
  assert.match(svg, /^<svg /);
  assert.equal(svg.match(/<rect x=/g)?.length, 3);
  assert.equal(svg.match(/fill="#c00">x</g)?.length, 1);
  assert.match(svg, /p50 3\.0s/);
  assert.match(svg, /p90 5\.0s/);
  assert.match(svg, /stress &lt;test>/);
});
