import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseKernelPath } from './kernel-path.js';
import { runOptionsFromFlags } from './run-options.js';

test('--kernel takes an existing file, made absolute; anything else is one clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-kernel-'));
  const k = join(dir, 'bzImage');
  writeFileSync(k, 'x');
  assert.equal(parseKernelPath(k), k);
  assert.throws(() => parseKernelPath(join(dir, 'nope')), /invalid --kernel ".*nope": no such file/);
  assert.throws(() => parseKernelPath(dir), /not a regular file/);
  assert.throws(() => parseKernelPath(''), /it is empty/);
});

test('--kernel-profile is default or nested', () => {
  assert.equal(runOptionsFromFlags('localhost/bb', [], { network: 'none' }).kernelProfile, 'default');
  assert.equal(runOptionsFromFlags('localhost/bb', [], { network: 'none', kernelProfile: 'nested' }).kernelProfile, 'nested');
  assert.throws(() => runOptionsFromFlags('localhost/bb', [], { network: 'none', kernelProfile: 'deep' }), /invalid --kernel-profile "deep": unknown value/);
});
