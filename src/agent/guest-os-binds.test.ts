import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bindIntoGuestOs, nestedProfile } from './guest-os-binds.js';
import { mountOps } from '../os/mount.js';

test('the nested profile is read from the kernel command line, as a whole word', () => {
  assert.equal(nestedProfile('console=ttyS0 fcvm.profile=nested quiet\n'), true);
  assert.equal(nestedProfile('fcvm.profile=nested'), true);
  assert.equal(nestedProfile('console=ttyS0 quiet'), false);
  assert.equal(nestedProfile('fcvm.profile=nestedx'), false);
});

test('a volume\'s mount appears at its path in the (guest) OS through a real bind mount', (t) => {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: needs root for mount(2) ***\n`);
    return t.skip('needs root');
  }
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-bind-'));
  const source = join(dir, 'volume-0');
  const target = join(dir, 'opt', 'fcvm');
  mkdirSync(source);
  writeFileSync(join(source, 'fcvm.mjs'), 'outer fcvm');
  try {
    bindIntoGuestOs(mountOps(), source, target);
    assert.equal(readFileSync(join(target, 'fcvm.mjs'), 'utf8'), 'outer fcvm');
    assert.throws(() => bindIntoGuestOs(mountOps(), join(dir, 'missing'), join(dir, 'elsewhere')), /cannot bind .*missing at .*elsewhere in the guest OS: mount\(.*\) failed: ENOENT/);
  } finally {
    spawnSync('umount', [target]);
    rmSync(dir, { recursive: true, force: true });
  }
});
