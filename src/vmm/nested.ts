import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { errors } from '../errors/catalogue.js';
import type { Accel } from './driver.js';
import type { KernelProfile } from '../setup/kernel-profile.js';

/** The CPU's virtualization extension, from /proc/cpuinfo's flags: AMD's svm or Intel's vmx. */
export function virtFlag(cpuinfo: string): 'svm' | 'vmx' | undefined {
  const flags = cpuinfo.match(/^flags\s*:\s*(.*)$/m)?.[1]?.split(/\s+/) ?? [];
  return flags.includes('svm') ? 'svm' : flags.includes('vmx') ? 'vmx' : undefined;
}

/** The kvm module parameter that allows nested guests, by extension. */
export const NESTED_PARAM = { svm: '/sys/module/kvm_amd/parameters/nested', vmx: '/sys/module/kvm_intel/parameters/nested' } as const;

/** How a kvm module prints a boolean parameter: "1"/"Y" on, "0"/"N" off. */
export function paramOn(text: string | undefined): boolean {
  return /^(1|y|Y)\s*$/.test(text ?? '');
}

export interface NestedHost {
  cpuinfo: string;
  readParam: (path: string) => string | undefined;
}

const realHost: NestedHost = {
  cpuinfo: safeRead('/proc/cpuinfo') ?? '',
  readParam: safeRead,
};

function safeRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * What the outer VM's CPU must expose for a nested-profile guest, or the NESTED_UNAVAILABLE
 * error that says why the host cannot give it. Under TCG, QEMU's `-cpu max` emulates
 * AMD's SVM (nothing to add); under KVM, `-cpu host` passes svm or vmx through only
 * when the host's kvm_amd or kvm_intel was loaded with nested=1.
 */
export function nestedCpu(accel: Accel, host: NestedHost = realHost): 'svm' | 'vmx' | undefined {
  if (accel === 'tcg') return undefined;
  const flag = virtFlag(host.cpuinfo);
  if (!flag) throw errors.nestedUnavailable('the host CPU shows neither svm nor vmx', 'Run on a host with AMD-V or VT-x, or use --accel tcg (QEMU emulates SVM)');
  const param = NESTED_PARAM[flag];
  const value = host.readParam(param);
  if (!paramOn(value)) {
    const mod = flag === 'svm' ? 'kvm_amd' : 'kvm_intel';
    throw errors.nestedUnavailable(
      `${param} is ${value === undefined ? 'missing' : `"${value.trim()}"`}, so KVM guests cannot run VMs`,
      `Turn it on: echo "options ${mod} nested=1" > /etc/modprobe.d/fcvm-nested.conf && modprobe -r ${mod} && modprobe ${mod} (with no VMs running); or use --accel tcg`,
    );
  }
  return flag;
}

/**
 * The vCPUs of a nested-profile VM under TCG unless --cpu says otherwise. QEMU's emulated
 * SVM is not safe with more than one vCPU thread (multi-threaded TCG): with 2, about one
 * inner boot in eight ended in an outer kernel panic, an inner reset or a lost outer VM.
 */
export const NESTED_TCG_VCPUS = 1;

/**
 * The VM's vCPUs: --cpu when given; else one for a nested-profile VM under TCG; else the
 * default, but no more than the CPUs this process may run on. More vCPU threads than CPUs
 * only wait for each other, and inside a slow VM (an inner VM on an outer guest with one
 * vCPU, under TCG) they starved each other's timers: 2 of 3 inner runs with two vCPUs
 * ended in an RCU stall ("rcu_preempt self-detected stall on CPU") and never started
 * their container; with one, 8 of 8 ran.
 */
export function vcpuCount(o: { vcpus: number; vcpusGiven: boolean; kernelProfile: KernelProfile }, accel: Accel, hostCpus = availableParallelism()): number {
  if (o.vcpusGiven) return o.vcpus;
  if (o.kernelProfile === 'nested' && accel === 'tcg') return NESTED_TCG_VCPUS;
  return Math.max(1, Math.min(o.vcpus, hostCpus));
}
