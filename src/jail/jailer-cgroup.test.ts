import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCgroupMounts } from './cgroup-mounts.js';
import { jailerCgroup } from './jailer-cgroup.js';

const MOUNTS = parseCgroupMounts([
  '26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
  '27 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
  '28 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
  '29 25 0:26 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids',
  '30 1 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw',
].join('\n'));
const limits = { memoryBytes: 768 * 2 ** 20, pids: 50, cpuWeight: 200 };

test('Firecracker\'s jailer joins the VM cgroup fcvm made: v1, one parent for every hierarchy, the same limits', () => {
  const id = 'ab12cd-1-2';
  const dirs = ['memory', 'pids', 'cpu,cpuacct'].map((h) => `/sys/fs/cgroup/${h}/system.slice/x.service/fcvm/${id}`);
  assert.deepEqual(jailerCgroup(1, dirs, limits, MOUNTS), {
    version: 1,
    parent: 'system.slice/x.service/fcvm',
    values: [`memory.limit_in_bytes=${768 * 2 ** 20}`, 'pids.max=50', 'cpu.shares=2048'],
  });
  // Without a cpu hierarchy, no cpu.shares.
  assert.deepEqual(jailerCgroup(1, dirs.slice(0, 2), limits, MOUNTS).values, [`memory.limit_in_bytes=${768 * 2 ** 20}`, 'pids.max=50']);
});

test('v2: the parent below the unified mount, v2 files; the deepest mount wins', () => {
  assert.deepEqual(jailerCgroup(2, ['/sys/fs/cgroup/fcvm/ab12cd-1-2'], limits, MOUNTS), {
    version: 2, parent: 'fcvm', values: [`memory.max=${768 * 2 ** 20}`, 'pids.max=50', 'cpu.weight=200'],
  });
  assert.equal(jailerCgroup(2, ['/sys/fs/cgroup/unified/fcvm/ab12cd-1-2'], limits, MOUNTS).parent, 'fcvm');
});

test('v1 hierarchies that disagree on the parent, or a directory on no mount, are refused with the reason', () => {
  assert.throws(() => jailerCgroup(1, ['/sys/fs/cgroup/memory/a/fcvm/x', '/sys/fs/cgroup/pids/b/fcvm/x'], limits, MOUNTS), /differ between hierarchies \(a\/fcvm, b\/fcvm\)/);
  assert.throws(() => jailerCgroup(1, ['/elsewhere/fcvm/x'], limits, MOUNTS), /on no cgroup v1 mount/);
});
