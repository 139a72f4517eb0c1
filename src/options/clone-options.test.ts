import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cloneFlagsFrom, nicSwapRefusal } from './clone-options.js';

test('snapshot run --pid is the memory server\'s, not podman\'s --pid', () => {
  assert.deepEqual(cloneFlagsFrom({ pid: '4242', name: 'c1' }).source, { kind: 'serve', pid: 4242 });
  assert.equal(cloneFlagsFrom({ snapshot: 'warm', exec: 'true', name: 'c2' }).exec?.[0], 'true');
});

test('a bridged snapshot\'s clone cannot go rootless over slirp (the NIC\'s offloads), but can over a TAP', () => {
  assert.match(nicSwapRefusal('bridged', 'rootless', 'user')?.message ?? '', /invalid --network "rootless": the snapshot was taken bridged/);
  assert.equal(nicSwapRefusal('bridged', 'rootless', 'tap'), undefined);
  assert.equal(nicSwapRefusal('rootless', 'bridged', 'user'), undefined);
  assert.equal(nicSwapRefusal('bridged', 'bridged', 'user'), undefined);
});
