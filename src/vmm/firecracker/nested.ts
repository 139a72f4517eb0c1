import { readFileSync } from 'node:fs';
import { errors } from '../../errors/catalogue.js';

/**
 * What a nested-profile guest needs from Firecracker, as a value: extra command-line
 * flags and guest kernel arguments. Pure apart from the default host reader.
 *
 * - ARM64 with FEAT_NV2 (Graviton3 metal and later): the host kernel (6.18+) boots with
 *   `kvm-arm.mode=nested`; Firecracker's NV2 fork takes `--enable-nv2` (vCPUs with
 *   KVM_ARM_VCPU_HAS_EL2 and HAS_EL2_E2H0, started at EL2h); the guest kernel, built
 *   with KVM and the MMFR4 patch, gets `arm64.nv2` (the seed's PR #31). The guest's own
 *   KVM then runs in nVHE mode, which cannot nest again: one level only.
 * - x86_64: upstream Firecracker does not give guests VMX or SVM: refused (QEMU can).
 */
export interface FirecrackerNestedPlan {
  /** Flags after firecracker's own. */
  args: readonly string[];
  /** Guest kernel arguments appended to the command line. */
  bootArgs: readonly string[];
}

export interface Arm64Host {
  /** /sys/module/kvm/parameters/mode ("nested" when the host kernel booted with kvm-arm.mode=nested). */
  kvmMode: string | undefined;
}

export const KVM_ARM_MODE = '/sys/module/kvm/parameters/mode';

function readKvmMode(): string | undefined {
  try {
    return readFileSync(KVM_ARM_MODE, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function firecrackerNestedPlan(arch: string, host: Arm64Host = { kvmMode: readKvmMode() }): FirecrackerNestedPlan {
  if (arch !== 'arm64') {
    throw errors.nestedUnavailable(
      `Firecracker on ${arch} gives its guests no virtualization extensions`,
      'Use --hypervisor qemu for a nested-profile VM on x86_64 (it passes svm/vmx through, or emulates SVM under TCG)',
    );
  }
  if (host.kvmMode !== 'nested') {
    throw errors.nestedUnavailable(
      `${KVM_ARM_MODE} is ${host.kvmMode === undefined ? 'missing' : `"${host.kvmMode}"`}, not "nested"`,
      'Boot the host (ARM64 with FEAT_NV2, kernel 6.18+) with kvm-arm.mode=nested, and use Firecracker\'s NV2 build (FCVM_FIRECRACKER_BIN)',
    );
  }
  return { args: Object.freeze(['--enable-nv2']), bootArgs: Object.freeze(['arm64.nv2']) };
}
