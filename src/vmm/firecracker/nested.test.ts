import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firecrackerArgs, firecrackerCmdline } from './command.js';
import { firecrackerNestedPlan } from './nested.js';

test('ARM64 with kvm-arm.mode=nested: --enable-nv2 on the command line, arm64.nv2 for the guest', () => {
  const plan = firecrackerNestedPlan('arm64', { kvmMode: 'nested' });
  assert.deepEqual(plan, { args: ['--enable-nv2'], bootArgs: ['arm64.nv2'] });
  assert.deepEqual(firecrackerArgs('vm1', plan.args), ['--api-sock', 'api.sock', '--id', 'vm1', '--log-path', 'firecracker.log', '--level', 'Warning', '--show-level', '--enable-nv2']);
  const cmdline = firecrackerCmdline({ cmdline: 'console=ttyS0 fcvm.profile=nested', disks: [{ id: 'root', path: '/r', format: 'raw', readOnly: false }] }, plan.bootArgs);
  assert.equal(cmdline, 'console=ttyS0 fcvm.profile=nested reboot=k fcvm.channel=vsock fcvm.halt=reboot fcvm.disk.root=vda arm64.nv2');
});

test('a host without nested mode, or x86_64, is one clear error', () => {
  assert.throws(() => firecrackerNestedPlan('arm64', { kvmMode: 'protected' }), (e: Error & { code?: string; hint?: string }) => {
    assert.equal(e.code, 'NESTED_UNAVAILABLE');
    assert.match(e.message, /mode is "protected", not "nested"/);
    assert.match(e.hint ?? '', /kvm-arm\.mode=nested/);
    return true;
  });
  assert.throws(() => firecrackerNestedPlan('arm64', { kvmMode: undefined }), /mode is missing/);
  assert.throws(() => firecrackerNestedPlan('x64', { kvmMode: 'nested' }), /Firecracker on x64 gives its guests no virtualization extensions/);
});

test('without a plan the command line is unchanged', () => {
  assert.deepEqual(firecrackerArgs('vm1'), ['--api-sock', 'api.sock', '--id', 'vm1', '--log-path', 'firecracker.log', '--level', 'Warning', '--show-level']);
});
