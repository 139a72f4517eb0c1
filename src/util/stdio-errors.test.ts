import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guardStdio, readerIsGone, releaseHungUpTerminal } from './stdio-errors.js';

test('a terminal that hung up is seen by its descriptors, and fcvm\'s stdio leaves it before Node\'s exit', () => {
  // Started on a terminal (fds 0-2); nothing was written since, so no EIO told of the hang-up.
  guardStdio(() => true);
  const fs = { closed: [] as number[], opened: 0, closeSync(fd: number) { this.closed.push(fd); }, openSync() { return this.opened++; } };
  releaseHungUpTerminal(fs, () => true);
  assert.deepEqual(fs.closed, [], 'a terminal that is still there is left to Node');
  assert.equal(readerIsGone(() => true), false);
  // Hung up: its descriptors answer no terminal ioctl any more.
  assert.equal(readerIsGone(() => false), true);
  releaseHungUpTerminal(fs, () => false);
  assert.deepEqual(fs.closed, [0, 1, 2]);
  assert.equal(fs.opened, 3, '/dev/null takes fds 0-2');
});
