import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ownerTag } from '../util/owner-tag.js';
import { idAlive } from './reaper.js';

test('a VM id is alive while the supervisor it names is', () => {
  assert.equal(idAlive(`ab12cd-${ownerTag()}`), true);
  assert.equal(idAlive(`123456-${process.pid}-1`), false, 'all-digit hex prefix, wrong start time');
  assert.equal(idAlive('ab12cd-4194304-5'), false);
  assert.equal(idAlive('garbage'), false);
});
