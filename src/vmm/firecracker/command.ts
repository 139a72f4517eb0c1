import type { JailerCgroup } from '../../jail/jailer-cgroup.js';
import type { VmSpec } from '../driver.js';

/** Files in a Firecracker VM's working directory (or jail root); Firecracker sees them by these relative names. */
export const FC_FILES = {
  api: 'api.sock',
  vsock: 'v.sock',
  log: 'firecracker.log',
  console: 'console.log',
  snapshotState: 'snapshot.state',
  snapshotMemory: 'snapshot.mem',
  uffd: 'uffd.sock',
} as const;

/** The guest CID of every VM: each has its own vsock device, so they need not differ. */
export const GUEST_CID = 3;

/** Running Firecracker through its jailer: the user it drops to, and the VM cgroup it joins. */
export interface JailerOptions {
  binary: string;
  uid: number;
  gid: number;
  /** The VM's cgroup (made by fcvm with its limits); absent: the jailer's default v2 layout. */
  cgroup?: JailerCgroup;
}

/**
 * The firecracker command line, as an immutable value. Everything is configured over
 * the API afterwards; the log goes to a file, the serial console to stdout. Pure.
 */
export function firecrackerArgs(id: string, extra: readonly string[] = []): readonly string[] {
  return Object.freeze(['--api-sock', FC_FILES.api, '--id', id, '--log-path', FC_FILES.log, '--level', 'Warning', '--show-level', ...extra]);
}

/**
 * The jailer command line for the same VM: it chroots into
 * `<chrootBase>/firecracker/<id>/root`, drops to uid/gid, joins the network namespace,
 * and execs firecracker with its own arguments. Pure.
 */
export function jailerArgs(o: { jailer: JailerOptions; firecracker: string; id: string; chrootBase: string; netns?: string; extra?: readonly string[] }): readonly string[] {
  return Object.freeze([
    '--id', o.id,
    '--exec-file', o.firecracker,
    '--uid', String(o.jailer.uid),
    '--gid', String(o.jailer.gid),
    '--chroot-base-dir', o.chrootBase,
    ...(o.netns ? ['--netns', `/run/netns/${o.netns}`] : []),
    ...(o.jailer.cgroup
      ? ['--cgroup-version', String(o.jailer.cgroup.version), '--parent-cgroup', o.jailer.cgroup.parent, ...o.jailer.cgroup.values.flatMap((v) => ['--cgroup', v])]
      : ['--cgroup-version', '2']),
    '--',
    ...firecrackerArgs(o.id, o.extra),
  ]);
}

/**
 * What wraps the jailer: new PID, IPC and UTS namespaces (the jailer makes the mount
 * namespace itself; its own --new-pid-ns would exit and orphan Firecracker). PID 1 of the
 * namespace is a shell that stays root and waits for the jailer, which becomes Firecracker:
 * unshare's --kill-child gives that shell a parent-death signal, and a process keeps one
 * only while its credentials stay the same, so Firecracker (dropped to the VM's uid by the
 * jailer) could not hold it itself. When the shell dies the kernel kills everything in the
 * namespace; the shell exits 128+N when Firecracker dies of signal N. Pure.
 */
export function jailerNamespaces(): readonly string[] {
  return Object.freeze(['unshare', '--pid', '--ipc', '--uts', '--fork', '--kill-child=SIGKILL', '--', 'sh', '-c', '"$@"; exit $?', 'fcvm-jail-init']);
}

/** The jail's root, where Firecracker's files must be: the jailer's fixed layout. */
export const jailRoot = (chrootBase: string, id: string) => `${chrootBase}/firecracker/${id}/root`;

/**
 * What Firecracker's guest needs on its command line beyond fcvm's own: the agent's
 * channel is vsock; a reboot (keyboard controller reset) is how the guest ends the VM,
 * so stage 2 reboots instead of powering off; and which /dev/vdX each disk is, since
 * Firecracker gives disks no serial the guest could match. Pure.
 */
export function firecrackerCmdline(spec: Pick<VmSpec, 'cmdline' | 'disks'>, extra: readonly string[] = []): string {
  const disks = spec.disks.map((d, i) => `fcvm.disk.${d.id}=vd${String.fromCharCode(97 + i)}`);
  return [spec.cmdline, 'reboot=k', 'fcvm.channel=vsock', 'fcvm.halt=reboot', ...disks, ...extra].join(' ');
}
