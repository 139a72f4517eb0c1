import { test } from 'node:test';
import assert from 'node:assert/strict';
import { debootstrapProgress } from './rootfs.js';

test('debootstrap output becomes one line per phase, however the packages alternate', () => {
  const seen = new Set<string>();
  const lines: string[] = [];
  const live: string[] = [];
  const out = ['I: Retrieving InRelease', 'I: Checking Release signature'];
  for (let i = 0; i < 160; i++) out.push(`I: Retrieving pkg${i} 1.0`, `I: Validating pkg${i} 1.0`);
  out.push('I: Extracting pkg0...', 'I: Installing core packages...', 'I: Base system installed successfully.', 'W: something');
  for (const l of out) {
    const p = debootstrapProgress(l, seen);
    if (p?.phase) lines.push(p.phase);
    if (p?.live) live.push(p.live);
  }
  assert.deepEqual(lines, ['retrieving packages', 'validating packages', 'extracting packages', 'installing packages', 'base system installed']);
  assert.ok(live.includes('validating pkg159'));
});
