import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cgroupDrill } from '../../test/fixtures/cgroup-drill.js';

// Real cgroups of this host (v1 or v2, whichever it gives): no VM, so no VM lock. The
// same drill runs inside a guest, whose cgroups are v2 (test/integration/cgroup-v2.test.ts).
test('a VM cgroup: limits written, a process joined, a fork bomb held at its pids limit, all removed', async (t) => {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: needs root ***\n`);
    return t.skip('needs root');
  }
  const r = await cgroupDrill();
  if (r.why) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: ${r.why} ***\n`);
    return t.skip(r.why);
  }
  assert.equal(r.joined, true);
  assert.equal(r.memory, String(64 * 2 ** 20));
  assert.equal(r.pids, '12');
  if (r.cpu !== undefined) assert.equal(r.cpu, r.version === 1 ? '2048' : '200');
  assert.ok(r.current! <= 12, `pids.current ${r.current}`);
  assert.match(r.events!, /max [1-9]/, 'forks were refused at the limit');
  assert.equal(r.removed, true);
  assert.equal(r.bombGone, true);
});
