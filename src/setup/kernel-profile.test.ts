import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROFILE_RECIPES, profileKernelArgs } from './kernel-profile.js';
import { rebaseManifest, type Manifest } from './manifest.js';

test('the nested profile loads KVM and adds QEMU and the jail\'s tools; the default adds nothing', () => {
  assert.deepEqual(PROFILE_RECIPES.default, { optionalModules: [], extraPackages: [], moduleTree: false, hostNode: false, fcvmLink: false });
  for (const m of ['kvm', 'kvm_amd', 'kvm_intel']) assert.ok(PROFILE_RECIPES.nested.optionalModules.includes(m));
  for (const p of ['qemu-system-x86', 'qemu-utils', 'bubblewrap', 'util-linux']) assert.ok(PROFILE_RECIPES.nested.extraPackages.includes(p));
  assert.deepEqual(profileKernelArgs('default'), []);
  assert.deepEqual(profileKernelArgs('nested'), ['fcvm.profile=nested']);
});

test('a manifest seen at another path points into the artifacts directory it was read from', () => {
  const a = (kind: string, file: string) => ({ hash: 'h', path: `/var/lib/fcvm-x/artifacts/${kind}-h/${file}` });
  const m: Manifest = {
    schema: 1, kernelVersion: '6.1', createdAt: 't',
    kernel: a('kernel', 'vmlinuz'), initrd: a('initrd', 'initrd.cpio'), rootfs: a('rootfs', 'rootfs.ext4'),
    nested: { initrd: a('initrd-nested', 'initrd.cpio'), rootfs: a('rootfs-nested', 'rootfs.ext4') },
  };
  const r = rebaseManifest(m, '/opt/art');
  assert.equal(r.kernel.path, '/opt/art/kernel-h/vmlinuz');
  assert.equal(r.rootfs.path, '/opt/art/rootfs-h/rootfs.ext4');
  assert.equal(r.nested?.initrd.path, '/opt/art/initrd-nested-h/initrd.cpio');
  assert.equal(r.vmlinux, undefined);
  assert.deepEqual(rebaseManifest(m, '/var/lib/fcvm-x/artifacts'), m);
});
