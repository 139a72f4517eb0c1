import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withNestedVolumes } from './nested-volumes.js';

const from = { packageRoot: '/src/fcvm', artifacts: '/var/lib/fcvm-x/artifacts' };

test('a nested VM gets fcvm and its artifacts read-only after the user\'s volumes', () => {
  const user = [{ host: '/data', guest: '/data', readOnly: false }];
  assert.deepEqual(withNestedVolumes(user, from), [
    user[0],
    { host: '/src/fcvm', guest: '/opt/fcvm', readOnly: true },
    { host: '/var/lib/fcvm-x/artifacts', guest: '/var/lib/fcvm/artifacts', readOnly: true },
  ]);
});

test('a user map at or above those paths wins', () => {
  const user = [{ host: '/mine', guest: '/opt/fcvm', readOnly: true }, { host: '/base', guest: '/var/lib/fcvm', readOnly: true }];
  assert.deepEqual(withNestedVolumes(user, from), user);
  const below = [{ host: '/x', guest: '/opt/fcvm-other', readOnly: true }];
  assert.equal(withNestedVolumes(below, from).length, 3);
});

test('the nested profile\'s volumes count against the limit, with one clear error', () => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => ({ host: `/d${i}`, guest: `/d${i}`, readOnly: false }));
  assert.equal(withNestedVolumes(many(62), from).length, 64);
  assert.throws(() => withNestedVolumes(many(63), from), /invalid --kernel-profile "nested": 63 volumes and the nested profile's 2 .* limit of 64/);
});
