import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fcvm, vmsAvailable } from '../helpers.js';
import { leftoverCounts } from '../leftovers.js';

test('fcvm test stress snapshots an image, starts clones in batches until each answers HTTP, reports, and cleans up', async (t) => {
  if (!vmsAvailable(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-stress-'));
  try {
    const json = join(dir, 'r.json');
    const plot = join(dir, 'r.svg');
    const r = await fcvm(['test', 'stress', '--image', 'localhost/bb-web', '--clones', '3', '--batch', '2', '--publish-base', '18960', '--json', json, '--plot', plot], { timeoutMs: 600_000 });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, /stress: 3 of 3 clones healthy \(100%\)/);
    assert.match(r.stderr, /stress: time to healthy: p50 \d+\.\ds, p90 \d+\.\ds, max \d+\.\ds/);
    assert.match(r.stderr, /stress: memory per clone: VMM \d+ MiB PSS/);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    assert.equal(report.healthy, 3);
    assert.equal(report.probe, 'http');
    assert.deepEqual(report.results.map((x: { batch: number }) => x.batch), [0, 0, 1]);
    assert.ok(report.results.every((x: { healthyMs?: number }) => x.healthyMs! > 0));
    assert.ok(report.memoryPerClone.vmmPssBytes > 10 * 2 ** 20);
    assert.equal(readFileSync(plot, 'utf8').match(/<rect x=/g)?.length, 3);
    const l = leftoverCounts();
    assert.equal(l.total, 0, l.detail);
    const snaps = await fcvm(['snapshots', '--json']);
    assert.ok(!snaps.stdout.includes(`"${report.tag}"`), 'the run\'s snapshot is deleted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
