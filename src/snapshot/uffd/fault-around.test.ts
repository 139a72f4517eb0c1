import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAround, windowPages } from './fault-around.js';

const M = 0;
const P = 1;
const R = 2;

test('the window is 64 KiB of pages by default, at least one page, at most 2 MiB', () => {
  assert.equal(windowPages(64 * 1024, 4096), 16);
  assert.equal(windowPages(64 * 1024, 2 * 1024 * 1024), 1);
  assert.equal(windowPages(0, 4096), 1);
  assert.equal(windowPages(1 << 30, 4096), 512);
});

test('a fault takes the run of pages in its own state inside its aligned window', () => {
  const state = new Uint8Array(32);
  assert.deepEqual(runAround(state, 5, 16, 0, 32), { first: 0, end: 16 });
  state.set([P, P, M, M, R, M, M, M], 16);
  assert.deepEqual(runAround(state, 18, 16, 0, 32), { first: 18, end: 20 }, 'stops at a removed page: it must get zeros, not the file');
  assert.deepEqual(runAround(state, 21, 16, 0, 32), { first: 21, end: 32 });
  assert.deepEqual(runAround(state, 20, 16, 0, 32), { first: 20, end: 21 }, 'a removed page takes only removed neighbours');
});

test('the run never leaves the fault\'s region', () => {
  const state = new Uint8Array(64);
  assert.deepEqual(runAround(state, 21, 16, 20, 26), { first: 20, end: 26 });
  assert.deepEqual(runAround(state, 21, 1, 0, 64), { first: 21, end: 22 }, 'a window of one page is the page');
});
