import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTrim } from './memory-trim.js';

function guest(order: string | undefined, bound = true) {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-trim-'));
  const files = {
    reportingOrder: join(dir, 'order'), dropCaches: join(dir, 'drop'), balloonDriver: join(dir, 'virtio_balloon'),
    synced: 0, sync: async (): Promise<void> => void files.synced++,
  };
  mkdirSync(files.balloonDriver);
  if (bound) mkdirSync(join(files.balloonDriver, 'virtio4'));
  if (order !== undefined) writeFileSync(files.reportingOrder, `${order}\n`);
  return files;
}

test('a trim syncs, drops every cache and reports page by page; restore puts the kernel\'s grain back once', async () => {
  const g = guest('9');
  const m = new MemoryTrim(g);
  assert.deepEqual(await m.trim(), { reporting: true });
  assert.equal(readFileSync(g.reportingOrder, 'utf8'), '0');
  assert.equal(readFileSync(g.dropCaches, 'utf8'), '3');
  assert.equal(g.synced, 1);
  // A second trim before the snapshot keeps the kernel's own grain, not its own 0.
  await m.trim();
  await m.restore();
  assert.equal(readFileSync(g.reportingOrder, 'utf8'), '9');
  writeFileSync(g.reportingOrder, '5');
  await m.restore();
  assert.equal(readFileSync(g.reportingOrder, 'utf8'), '5', 'a restore without a trim writes nothing');
});

test('a restore asked while a trim is under way waits for it, so the order ends as the kernel\'s', async () => {
  const g = guest('9');
  let release = () => {};
  g.sync = () => new Promise<void>((r) => (release = r));
  const m = new MemoryTrim(g);
  const trimmed = m.trim();
  await new Promise((r) => setImmediate(r));
  const restored = m.restore();
  release();
  await trimmed;
  await restored;
  assert.equal(readFileSync(g.reportingOrder, 'utf8'), '9');
});

test('no bound balloon, or an order that is not a number (no device registered): nothing dropped', async () => {
  for (const g of [guest('9', false), guest(undefined), guest('-1')]) {
    assert.deepEqual(await new MemoryTrim(g).trim(), { reporting: false });
    assert.equal(existsSync(g.dropCaches), false);
    assert.equal(g.synced, 0);
  }
});

test('a restore that cannot write says so and never throws', async () => {
  const g = guest('9');
  const said: string[] = [];
  const m = new MemoryTrim(g, (msg) => said.push(msg));
  await m.trim();
  g.reportingOrder = join(g.balloonDriver, 'missing', 'order');
  await m.restore();
  assert.match(said.join('\n'), /could not put free page reporting's order back to 9/);
  await m.restore();
  assert.equal(said.length, 1, 'the saved order is given up after one try');
});
