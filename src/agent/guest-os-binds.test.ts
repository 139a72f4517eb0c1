import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nestedProfile } from './guest-os-binds.js';

test('the nested profile is read from the kernel command line, as a whole word', () => {
  assert.equal(nestedProfile('console=ttyS0 fcvm.profile=nested quiet\n'), true);
  assert.equal(nestedProfile('fcvm.profile=nested'), true);
  assert.equal(nestedProfile('console=ttyS0 quiet'), false);
  assert.equal(nestedProfile('fcvm.profile=nestedx'), false);
});
