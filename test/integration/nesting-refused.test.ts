/**
 * A host whose KVM cannot nest: a nested-profile VM under KVM is refused with one line,
 * before anything is acquired. In its own file, so no other test's VM (the inception
 * suite's outer VM) is running when it checks that nothing is left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { nestedCpu } from '../../src/vmm/nested.js';
import { assertNoLeftovers, fcvm, vmsAvailable } from '../helpers.js';

test('a host whose KVM cannot nest gets one clear line and exit 125 for --accel kvm, and nothing is left', async (t) => {
  if (!vmsAvailable(t)) return;
  let canNest = false;
  try {
    canNest = existsSync('/dev/kvm') && nestedCpu('kvm') !== undefined;
  } catch {
    canNest = false;
  }
  if (canNest) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: this host's KVM can nest ***\n`);
    return t.skip('this host\'s KVM can nest');
  }
  const r = await fcvm(['podman', 'run', '--network', 'none', '--accel', 'kvm', '--kernel-profile', 'nested', 'localhost/bb', '--', 'true']);
  assert.equal(r.exitCode, 125);
  assert.match(r.stderr, /^fcvm: (this host cannot run VMs inside VMs|accelerator "kvm" is not usable here): .*\n$/);
  assertNoLeftovers();
});
