import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostTscKhz } from './host-tsc.js';

test('the TSC rate comes from cpu MHz when the TSC is constant', () => {
  assert.equal(hostTscKhz('processor\t: 0\ncpu MHz\t\t: 2596.128\nflags\t\t: fpu tsc constant_tsc\n\nprocessor\t: 1\n'), 2596128);
  assert.equal(hostTscKhz('cpu MHz\t\t: 2596.128\nflags\t\t: fpu tsc\n'), undefined);
  assert.equal(hostTscKhz(''), undefined);
});
