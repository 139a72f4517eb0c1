import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownerTag } from '../util/owner-tag.js';
import { PULL_DIR_PREFIX } from '../images/host-pull.js';
import { layoutFor } from '../setup/layout.js';
import { createLogger } from '../util/log.js';
import { idAlive, reapLeftovers } from './reaper.js';

test('a VM id is alive while the supervisor it names is', () => {
  assert.equal(idAlive(`ab12cd-${ownerTag()}`), true);
  assert.equal(idAlive(`123456-${process.pid}-1`), false, 'all-digit hex prefix, wrong start time');
  assert.equal(idAlive('ab12cd-4194304-5'), false);
  assert.equal(idAlive('garbage'), false);
});

test('a killed fcvm\'s host-pull directory (its credentials) is reaped; a live one\'s is not', async () => {
  const base = mkdtempSync(join(tmpdir(), 'fcvm-reap-'));
  const dead = join('/tmp', `${PULL_DIR_PREFIX}4194304-7.partial`);
  const live = join('/tmp', `${PULL_DIR_PREFIX}${ownerTag()}.partial`);
  try {
    for (const d of [dead, live]) {
      mkdirSync(d, { mode: 0o700 });
      writeFileSync(join(d, 'auth.json'), '{"auths":{}}');
    }
    const layout = layoutFor(base);
    await reapLeftovers(layout, createLogger('silent'));
    assert.equal(existsSync(dead), false, 'the dead owner\'s directory went');
    assert.equal(existsSync(live), true, 'a running pull keeps its own');
  } finally {
    for (const d of [dead, live, base]) rmSync(d, { recursive: true, force: true });
  }
});
