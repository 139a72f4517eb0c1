import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTrim } from './memory-trim.js';

function guest(order: string | undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-trim-'));
  const files = { reportingOrder: join(dir, 'order'), dropCaches: join(dir, 'drop'), synced: 0, sync: () => void files.synced++ };
  if (order !== undefined) writeFileSync(files.reportingOrder, `${order}\n`);
  return files;
}

test('a trim syncs, drops every cache and reports page by page; restore puts the kernel\'s grain back once', () => {
  const g = guest('9');
  const m = new MemoryTrim(g);
  assert.deepEqual(m.trim(), { reporting: true });
  assert.equal(readFileSync(g.reportingOrder, 'utf8'), '0');
  assert.equal(readFileSync(g.dropCaches, 'utf8'), '3');
  assert.equal(g.synced, 1);
  // A second trim before the snapshot keeps the kernel's own grain, not its own 0.
  m.trim();
  m.restore();
  assert.equal(readFileSync(g.reportingOrder, 'utf8'), '9');
  writeFileSync(g.reportingOrder, '5');
  m.restore();
  assert.equal(readFileSync(g.reportingOrder, 'utf8'), '5', 'a restore without a trim writes nothing');
});

test('a guest without free page reporting drops nothing', () => {
  const g = guest(undefined);
  assert.deepEqual(new MemoryTrim(g).trim(), { reporting: false });
  assert.equal(existsSync(g.dropCaches), false);
  assert.equal(g.synced, 0);
});
