import type { CgroupLimits, VmCgroup } from './cgroup.js';

/**
 * How a VM's VMM is jailed, for any driver. The QEMU driver builds a bubblewrap jail from
 * it (src/vmm/qemu/jail.ts). The Firecracker driver hands it to Firecracker's jailer
 * (`--uid uid --gid gid`, its chroot on the disk root, `--parent-cgroup` and `--cgroup`
 * naming `cgroup` and `limits`: src/jail/jailer-cgroup.ts), inside new PID, IPC and UTS
 * namespaces.
 */
export interface JailSpec {
  /**
   * `full`: root gave the VMM an identity of its own, a root and namespaces.
   * `user`: an unprivileged user's VMM keeps the user's uid and gets what the kernel
   * allows that user (namespaces if user namespaces are allowed, seccomp and no_new_privs always).
   */
  mode: 'full' | 'user';
  /** The VM's id, which also names its cgroup. */
  id: string;
  uid: number;
  gid: number;
  /** Made with `limits` before the VMM starts; undefined where the host gives fcvm no cgroups. */
  cgroup: VmCgroup | undefined;
  limits: CgroupLimits;
  /** A directory of root's that the VMM never sees: device nodes made for it (QEMU). */
  privateDir: string;
  /** Whether the VMM gets new namespaces and a root of its own (an unprivileged user may be refused user namespaces). */
  namespaces: boolean;
}
