import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ownerAlive, ownerTag } from './owner-tag.js';

test('a name tagged by this process is alive; a dead or reused PID is not', () => {
  assert.equal(ownerAlive(`.abc-123.${ownerTag()}.partial`), true);
  assert.equal(ownerAlive(`.abc.${process.pid}-1.partial`), false, 'same PID, other start time');
  assert.equal(ownerAlive('.abc.4194304-5.partial'), false);
  assert.equal(ownerAlive('.untagged.partial'), false);
});
