import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFcvmError } from '../errors/fcvm-error.js';
import { NESTED_TCG_VCPUS, nestedCpu, paramOn, vcpuCount, virtFlag } from './nested.js';

const AMD = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr svm npt\n';
const INTEL = 'processor\t: 0\nflags\t\t: fpu vme de vmx ept\n';
const NONE = 'processor\t: 0\nflags\t\t: fpu vme de hypervisor\n';

test('virtFlag finds svm or vmx in the flags line', () => {
  assert.equal(virtFlag(AMD), 'svm');
  assert.equal(virtFlag(INTEL), 'vmx');
  assert.equal(virtFlag(NONE), undefined);
});

test('paramOn reads the kvm module\'s boolean spellings', () => {
  for (const on of ['1\n', 'Y\n', 'y']) assert.equal(paramOn(on), true);
  for (const off of ['0\n', 'N\n', '', undefined]) assert.equal(paramOn(off), false);
});

test('under TCG nothing is added (-cpu max emulates SVM) and the host is not asked', () => {
  assert.equal(nestedCpu('tcg', { cpuinfo: NONE, readParam: () => assert.fail('read') }), undefined);
});

test('under KVM the host\'s extension is passed through when nested=1', () => {
  assert.equal(nestedCpu('kvm', { cpuinfo: AMD, readParam: (p) => (p.includes('kvm_amd') ? '1\n' : undefined) }), 'svm');
  assert.equal(nestedCpu('kvm', { cpuinfo: INTEL, readParam: (p) => (p.includes('kvm_intel') ? 'Y\n' : undefined) }), 'vmx');
});

test('nested=0 is one clear error that says how to turn it on', () => {
  try {
    nestedCpu('kvm', { cpuinfo: INTEL, readParam: () => 'N\n' });
    assert.fail('no error');
  } catch (e) {
    assert.ok(isFcvmError(e));
    assert.equal(e.code, 'NESTED_UNAVAILABLE');
    assert.equal(e.exitCode, 125);
    assert.match(e.message, /kvm_intel\/parameters\/nested is "N"/);
    assert.match(e.hint ?? '', /options kvm_intel nested=1/);
  }
  assert.throws(() => nestedCpu('kvm', { cpuinfo: NONE, readParam: () => '1' }), /neither svm nor vmx/);
  assert.throws(() => nestedCpu('kvm', { cpuinfo: AMD, readParam: () => undefined }), /kvm_amd\/parameters\/nested is missing/);
});

test('a nested-profile VM under TCG gets one vCPU unless --cpu was given; others keep theirs', () => {
  const nested = { vcpus: 2, vcpusGiven: false, kernelProfile: 'nested' as const };
  assert.equal(vcpuCount(nested, 'tcg', 2), NESTED_TCG_VCPUS);
  assert.equal(NESTED_TCG_VCPUS, 1);
  assert.equal(vcpuCount({ ...nested, vcpusGiven: true }, 'tcg', 2), 2);
  assert.equal(vcpuCount(nested, 'kvm', 2), 2);
  assert.equal(vcpuCount({ ...nested, kernelProfile: 'default' }, 'tcg', 2), 2);
});

test('the default vCPUs are no more than the host\'s CPUs; --cpu may ask for more', () => {
  const dflt = { vcpus: 2, vcpusGiven: false, kernelProfile: 'default' as const };
  assert.equal(vcpuCount(dflt, 'kvm', 1), 1);
  assert.equal(vcpuCount(dflt, 'tcg', 1), 1);
  assert.equal(vcpuCount(dflt, 'kvm', 8), 2);
  assert.equal(vcpuCount({ ...dflt, vcpusGiven: true }, 'kvm', 1), 2);
  assert.equal(vcpuCount({ ...dflt, vcpus: 4, vcpusGiven: true }, 'kvm', 2), 4);
});
