import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmListing } from '../../state/list.js';
import { newest } from './ls.js';

test('ps -n N and -l keep the VMs started last, in the listing\'s order', () => {
  const vm = (name: string, createdAt: string) => ({ name, createdAt }) as unknown as VmListing;
  const all = [vm('a', '2026-01-01T00:00:03Z'), vm('b', '2026-01-01T00:00:01Z'), vm('c', '2026-01-01T00:00:02Z')];
  assert.deepEqual(newest(all, 2).map((v) => v.name), ['a', 'c']);
  assert.deepEqual(newest(all, 1).map((v) => v.name), ['a']);
  assert.deepEqual(newest(all, 9).map((v) => v.name), ['a', 'b', 'c']);
  assert.equal(newest(all, undefined), all);
});
