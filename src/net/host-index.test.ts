import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processStartTime } from '../util/proc.js';
import { reapHostIndexes, releaseHostIndex, reserveHostIndex } from './host-index.js';

test('a network index is one supervisor\'s across base directories; a dead one\'s is taken over and reaped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-index-'));
  try {
    const me = { pid: process.pid, start: processStartTime(process.pid)! };
    assert.equal(reserveHostIndex(0, me.pid, me.start, dir), true);
    assert.equal(reserveHostIndex(0, me.pid, me.start, dir), true, 'its own holder may ask again');
    // Another live process (PID 1) holds index 1: not ours to take.
    const init = { pid: 1, start: processStartTime(1)! };
    assert.equal(reserveHostIndex(1, init.pid, init.start, dir), true);
    assert.equal(reserveHostIndex(1, me.pid, me.start, dir), false);
    // A supervisor that died (a child that has exited) left index 2: taken over.
    const child = spawnSync('true');
    const dead = { pid: child.pid!, start: 1 };
    assert.equal(reserveHostIndex(2, dead.pid, dead.start, dir), true);
    assert.deepEqual(reapHostIndexes(dir), [2]);
    assert.equal(existsSync(join(dir, '2')), false);
    assert.equal(reserveHostIndex(2, me.pid, me.start, dir), true);
    releaseHostIndex(1, me.pid, me.start, dir);
    assert.equal(existsSync(join(dir, '1')), true, 'only its holder gives an index back');
    releaseHostIndex(0, me.pid, me.start, dir);
    assert.equal(existsSync(join(dir, '0')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
