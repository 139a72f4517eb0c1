import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uffdRefusal } from './uffd-features.js';

const info = (features: string) => `pos:\t0\nflags:\t02004000\nmnt_id:\t17\nino:\t621838\npending:\t0\ntotal:\t0\nAPI:\taa:${features}:80000000000001ff\n`;

test('a uffd set up as Firecracker sets it up (EVENT_REMOVE) is served', () => {
  assert.equal(uffdRefusal(info('80000008')), undefined);
  assert.equal(uffdRefusal(info('80000108')), undefined, 'other features (THREAD_ID) do no harm');
});

test('a uffd without EVENT_REMOVE, with EVENT_FORK, or never set up is refused with the reason', () => {
  assert.match(uffdRefusal(info('80000000'))!, /lacks UFFD_FEATURE_EVENT_REMOVE/);
  assert.match(uffdRefusal(info('8000000a'))!, /EVENT_FORK/);
  assert.match(uffdRefusal(info('0'))!, /never set up/);
  assert.match(uffdRefusal('pos:\t0\n')!, /cannot be read/);
});
