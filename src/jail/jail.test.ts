import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharesFor, vmLimits } from './cgroup.js';
import { cgroupDir, ownPath, parseCgroupMounts, parseProcCgroup } from './cgroup-mounts.js';
import { JAIL_ID_BASE, JAIL_ID_COUNT, isJailId, pickJailId } from './identity.js';
import { claimJailId, deadJailIdClaims, reapJailIdClaims, releaseJailId } from './id-registry.js';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HYBRID = [
  '25 1 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  '26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw',
  '27 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct',
  '28 25 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory',
  '29 25 0:26 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,pids',
  '30 25 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,xattr,name=systemd',
  '31 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw',
].join('\n');

test('cgroup mounts: v2 and each v1 hierarchy with its controllers, named hierarchies without any', () => {
  const m = parseCgroupMounts(HYBRID);
  assert.deepEqual(m.map((x) => [x.version, x.dir, x.controllers.join(',')]), [
    [2, '/sys/fs/cgroup/unified', ''],
    [1, '/sys/fs/cgroup/cpu,cpuacct', 'cpu,cpuacct'],
    [1, '/sys/fs/cgroup/memory', 'memory'],
    [1, '/sys/fs/cgroup/pids', 'pids'],
    [1, '/sys/fs/cgroup/systemd', ''],
  ]);
});

test('own cgroup per controller and its directory, also under a cgroup namespace\'s mount root', () => {
  const own = parseProcCgroup('9:name=systemd:/\n8:pids:/a\n4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/user.slice/s.scope\n');
  assert.equal(ownPath(own, 'memory'), '/process_api/x');
  assert.equal(ownPath(own, 'cpu'), '/');
  assert.equal(ownPath(own, ''), '/user.slice/s.scope');
  assert.equal(ownPath(own, 'blkio'), undefined);
  const [, , mem] = parseCgroupMounts(HYBRID);
  assert.equal(cgroupDir(mem!, '/process_api/x'), '/sys/fs/cgroup/memory/process_api/x');
  assert.equal(cgroupDir({ ...mem!, root: '/process_api' }, '/process_api/x'), '/sys/fs/cgroup/memory/x');
});

test('limits: RAM plus the VMM\'s own, TCG\'s cache when under TCG; tasks and CPU weight follow --cpu', () => {
  const tcg = vmLimits({ vcpus: 2, memoryMiB: 512, accel: 'tcg' });
  const kvm = vmLimits({ vcpus: 2, memoryMiB: 512, accel: 'kvm' });
  const clone = vmLimits({ vcpus: 2, memoryMiB: 512, accel: 'tcg', tcgCacheMiB: 32 });
  assert.ok(kvm.memoryBytes > 512 * 2 ** 20 && kvm.memoryBytes < 1024 * 2 ** 20);
  assert.equal(tcg.memoryBytes - kvm.memoryBytes, 1024 * 2 ** 20);
  assert.equal(clone.memoryBytes - kvm.memoryBytes, 32 * 2 ** 20);
  assert.ok(vmLimits({ vcpus: 4, memoryMiB: 512, accel: 'kvm' }).pids > kvm.pids);
  assert.equal(kvm.cpuWeight, 200);
  assert.equal(vmLimits({ vcpus: 500, memoryMiB: 512, accel: 'kvm' }).cpuWeight, 10_000);
  assert.equal(sharesFor(100), 1024);
  assert.equal(sharesFor(200), 2048);
});

test('jail ids: the lowest free one, skipping claimed ids and ids processes run as; none when all are taken', () => {
  assert.equal(pickJailId(new Set(), new Set()), JAIL_ID_BASE);
  assert.equal(pickJailId(new Set([JAIL_ID_BASE]), new Set([JAIL_ID_BASE + 1])), JAIL_ID_BASE + 2);
  const all = new Set(Array.from({ length: JAIL_ID_COUNT }, (_, i) => JAIL_ID_BASE + i));
  assert.equal(pickJailId(all, new Set()), undefined);
  assert.ok(isJailId(JAIL_ID_BASE) && !isJailId(0) && !isJailId(JAIL_ID_BASE + JAIL_ID_COUNT));
  assert.ok(JAIL_ID_BASE + JAIL_ID_COUNT < 2 ** 31);
});

test('jail id registry: claims are per live process, host-wide; a dead claimer\'s id is taken over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-ids-'));
  // No process runs as a jail id here (jailed VMs elsewhere on this host would).
  const none = () => new Set<number>();
  try {
    const a = await claimJailId(dir, none);
    assert.equal(a, JAIL_ID_BASE);
    // This process holds it: the next claim (another VM of this supervisor) gets the next id.
    assert.equal(await claimJailId(dir, none), JAIL_ID_BASE + 1);
    // A claimer that is gone (PID 1 with another start time) frees its id.
    writeFileSync(join(dir, String(JAIL_ID_BASE)), '1 1\n');
    assert.equal(await claimJailId(dir, none), JAIL_ID_BASE);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('jail id registry: a VM that ends gives up its own claim, never another process\'s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-ids-'));
  try {
    const mine = (await claimJailId(dir, () => new Set()))!;
    const other = JAIL_ID_BASE + 9;
    writeFileSync(join(dir, String(other)), '1 1\n');
    releaseJailId(other, dir);
    releaseJailId(mine, dir);
    releaseJailId(mine, dir);
    assert.deepEqual(readdirSync(dir).filter((f) => !f.startsWith('.')), [String(other)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('jail id registry: the reaper removes dead claimers\' claims and keeps live ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-ids-'));
  try {
    const live = await claimJailId(dir, () => new Set());
    writeFileSync(join(dir, String(JAIL_ID_BASE + 7)), '1 1\n');
    assert.deepEqual(deadJailIdClaims(dir), [JAIL_ID_BASE + 7]);
    assert.deepEqual(await reapJailIdClaims(dir), [JAIL_ID_BASE + 7]);
    assert.deepEqual(deadJailIdClaims(dir), []);
    assert.deepEqual(readdirSync(dir).filter((f) => !f.startsWith('.')), [String(live)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
