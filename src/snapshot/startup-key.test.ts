import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStartupTag, startupKey, startupTag, type StartupKeyInputs } from './startup-key.js';
import { validateName } from '../options/parse.js';

const base: StartupKeyInputs = {
  fcvm: '0.1.0+abc', hypervisor: 'qemu', vmm: '/usr/bin/qemu:1:2', accel: 'tcg',
  artifacts: { kernel: 'k', initrd: 'i', rootfs: 'r' }, cmdline: 'console=ttyS0',
  imageId: 'a'.repeat(64), vcpus: 2, memoryMiB: 512, network: 'bridged', volumeGuestPaths: ['/a', '/b'],
};

test('every input of a startup key changes it', () => {
  const k = startupKey(base);
  const changes: Partial<StartupKeyInputs>[] = [
    { fcvm: '0.1.0+abd' }, { hypervisor: 'firecracker' }, { vmm: 'x' }, { accel: 'kvm' },
    { artifacts: { kernel: 'k2', initrd: 'i', rootfs: 'r' } }, { artifacts: { kernel: 'k', initrd: 'i2', rootfs: 'r' } },
    { artifacts: { kernel: 'k', initrd: 'i', rootfs: 'r2' } }, { cmdline: 'console=ttyS0 x' },
    { imageId: 'b'.repeat(64) }, { vcpus: 1 }, { memoryMiB: 1024 }, { network: 'none' }, { volumeGuestPaths: ['/a'] },
  ];
  const keys = new Set([k, ...changes.map((c) => startupKey({ ...base, ...c }))]);
  assert.equal(keys.size, changes.length + 1);
});

test('a startup key ignores the order of volume paths, and its tag is a valid tag', () => {
  assert.equal(startupKey(base), startupKey({ ...base, volumeGuestPaths: ['/b', '/a'] }));
  const tag = startupTag(startupKey(base));
  assert.equal(validateName(tag, 'snapshot tag'), tag);
  assert.match(tag, /^startup-[0-9a-f]{24}$/);
  assert.ok(isStartupTag(tag));
  for (const t of ['startup-prod-warm', 'startup-', `${tag}0`, `x${tag}`, tag.toUpperCase()]) assert.ok(!isStartupTag(t), t);
});
