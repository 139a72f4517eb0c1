import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cloneFlagsFrom } from './clone-options.js';

test('snapshot run --pid is the memory server\'s, not podman\'s --pid', () => {
  assert.deepEqual(cloneFlagsFrom({ pid: '4242', name: 'c1' }).source, { kind: 'serve', pid: 4242 });
  assert.equal(cloneFlagsFrom({ snapshot: 'warm', exec: 'true', name: 'c2' }).exec?.[0], 'true');
});
