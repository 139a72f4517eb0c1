import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../util/log.js';
import { FirecrackerDriver } from './driver.js';

const log = createLogger('error');

test('where Firecracker cannot run, every missing piece is named in one line', async () => {
  const why = await new FirecrackerDriver(log, { binary: '/nonexistent/firecracker' }).unavailableReason();
  assert.match(why ?? '', /^no "firecracker" binary on PATH/);
  // This machine's KVM is named too when it cannot run the guest (PVM, or no /dev/kvm).
  if (existsSync('/sys/module/kvm_pvm')) assert.match(why!, /; this host's KVM is PVM/);
  assert.equal(why!.includes('\n'), false);
});

test('a binary too old for ACPI device discovery is refused by version (where KVM would do)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-fcbin-'));
  try {
    const bin = join(dir, 'firecracker');
    writeFileSync(bin, '#!/bin/sh\necho "Firecracker v1.7.0"\n');
    chmodSync(bin, 0o755);
    const why = await new FirecrackerDriver(log, { binary: bin }).unavailableReason();
    if (why && /KVM|kvm/.test(why)) return t.skip(`KVM is the first problem here: ${why}`);
    assert.match(why ?? '', /Firecracker 1\.7\.0 is older than 1\.8\.0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
