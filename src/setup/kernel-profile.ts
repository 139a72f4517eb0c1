/**
 * Kernel profiles: what the guest's initrd loads and what its root filesystem holds.
 *
 * - `default`: the guest runs one container (podman, Node for the agent).
 * - `nested`: the guest is itself a VM host for an inner fcvm: the KVM modules load at
 *   boot (so /dev/kvm exists in the guest and in a --privileged container), and the
 *   root filesystem adds QEMU, qemu-img, bubblewrap and setpriv (the inner fcvm jails
 *   its QEMU as the outer one does), the kernel's whole module tree (for the inner
 *   fcvm's TAP, veth and netfilter modules, loaded on demand) and the Node runtime
 *   that ran `fcvm setup` (the CLI needs Node 20; Debian bookworm ships 18).
 *
 * Pure data; setup turns it into content-addressed artifacts.
 */
export const KERNEL_PROFILES = ['default', 'nested'] as const;
export type KernelProfile = (typeof KERNEL_PROFILES)[number];

export interface ProfileRecipe {
  /** Modules the initrd tries to load after the required ones; absent ones are skipped (kvm_intel on AMD). */
  optionalModules: readonly string[];
  /** Debian packages added to the root filesystem. */
  extraPackages: readonly string[];
  /** Copy the kernel's whole module tree into the root filesystem (on-demand loading). */
  moduleTree: boolean;
  /** Copy the Node runtime that runs setup into the root filesystem as /usr/local/bin/node. */
  hostNode: boolean;
  /** Link `fcvm` on PATH to the outer fcvm's mapped package (NESTED_FCVM_LINK). */
  fcvmLink: boolean;
}

export const PROFILE_RECIPES: Readonly<Record<KernelProfile, ProfileRecipe>> = {
  default: { optionalModules: [], extraPackages: [], moduleTree: false, hostNode: false, fcvmLink: false },
  nested: {
    optionalModules: ['kvm', 'kvm_amd', 'kvm_intel', 'tun', 'veth'],
    // bubblewrap and util-linux's setpriv: the inner fcvm's VMM jail.
    extraPackages: ['qemu-system-x86', 'qemu-utils', 'bubblewrap', 'util-linux', 'procps'],
    moduleTree: true,
    hostNode: true,
    fcvmLink: true,
  },
};

/** Where the nested root filesystem keeps the Node runtime it was given. */
export const NESTED_NODE_PATH = '/usr/local/bin/node';

/**
 * Where a nested-profile VM finds the outer fcvm: its package mapped read-only at
 * NESTED_FCVM_DIR, its artifacts at NESTED_ARTIFACTS (the inner fcvm's default base dir
 * is /var/lib/fcvm on the outer guest's own disk, so only the artifacts are shared and
 * the inner state never lands on the read-only map), and `fcvm` on PATH.
 */
export const NESTED_FCVM_DIR = '/opt/fcvm';
export const NESTED_ARTIFACTS = '/var/lib/fcvm/artifacts';
export const NESTED_FCVM_LINK = { path: '/usr/local/bin/fcvm', target: `${NESTED_FCVM_DIR}/dist/fcvm.mjs` } as const;

/** Kernel arguments that tell the guest agent its profile (nested: volumes also appear at their paths in the guest OS). */
export function profileKernelArgs(profile: KernelProfile): string[] {
  return profile === 'default' ? [] : [`fcvm.profile=${profile}`];
}
