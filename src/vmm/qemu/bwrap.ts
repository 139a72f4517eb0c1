import { dirname } from 'node:path';
import type { HostFiles } from './jail-files.js';

/** What a jailed QEMU's root holds and how it is started: turned into a bubblewrap command line. */
export interface JailPlan {
  host: HostFiles;
  /** Files and directories shown read-only, at their host paths. */
  readOnly: readonly string[];
  /** Files and directories shown writable, at their host paths. */
  writable: readonly string[];
  /** Device nodes: `source` on the host shown at `dest`. */
  devices: readonly { source: string; dest: string }[];
  /** A procfs of the VMM's own PID namespace (for /proc/self/fd/N paths). */
  proc: boolean;
  /** An unprivileged user's jail: a user namespace, no identity change. */
  userNamespace: boolean;
  /** The identity setpriv switches to (root's jail only). */
  identity: { uid: number; gid: number } | undefined;
  chdir: string;
  /** The fds bubblewrap reports the sandbox's PID on, and waits on before it sets the sandbox up. */
  infoFd: number;
  blockFd: number;
  setpriv: string;
  /** The VMM's command line; its program is looked up in `path`. */
  command: readonly string[];
  path: string;
}

/** Devices every jailed VMM gets (no others exist in its root). */
export const BASIC_DEVICES = ['/dev/null', '/dev/zero', '/dev/urandom'];

/**
 * The bubblewrap command line for a jailed QEMU. Pure. bubblewrap makes new mount, PID,
 * IPC and UTS namespaces (and a user namespace for an unprivileged user), a root that
 * is an empty tmpfs holding only the listed files at their usual paths (then made
 * read-only), no environment, its own session, and SIGKILL if fcvm dies. Inside,
 * bubblewrap's own init is PID 1, and its child setpriv drops to the VM's uid and gid
 * with no supplementary groups, no capabilities (not even in the bounding set) and
 * no_new_privs, and then runs QEMU.
 *
 * Why not QEMU as PID 1: a parent-death signal passes the kill permission check, and
 * bubblewrap's outer process (root without capabilities) may not signal another uid,
 * so a QEMU under the VM's uid outlived a SIGKILLed fcvm. The init keeps root's uid:
 * its parent-death signal arrives, and when PID 1 dies the kernel kills every process
 * of the namespace, QEMU included.
 */
export function bwrapArgs(p: JailPlan): string[] {
  const symlinkPaths = new Set(p.host.symlinks.map((s) => s.path));
  const dests = [...p.host.files, ...p.host.symlinks.map((s) => s.path), ...p.readOnly, ...p.writable, ...p.devices.map((d) => d.dest)];
  const dirs = new Set<string>();
  for (const d of dests) for (let dir = dirname(d); dir !== '/' && !dirs.has(dir); dir = dirname(dir)) dirs.add(dir);
  for (const s of symlinkPaths) dirs.delete(s);
  const args = [
    '--unshare-pid', '--unshare-ipc', '--unshare-uts',
    ...(p.userNamespace ? ['--unshare-user', '--disable-userns'] : []),
    '--die-with-parent', '--new-session', '--clearenv', '--setenv', 'PATH', p.path,
    '--info-fd', String(p.infoFd), '--block-fd', String(p.blockFd),
    // Parents first (sorted: a parent sorts before its children), each 0755: bubblewrap's own are 0700.
    ...[...dirs].sort().flatMap((d) => ['--dir', d]),
    ...p.host.symlinks.flatMap((s) => ['--symlink', s.target, s.path]),
    ...p.host.files.flatMap((f) => ['--ro-bind', f, f]),
    ...p.readOnly.flatMap((f) => ['--ro-bind', f, f]),
    ...p.writable.flatMap((f) => ['--bind', f, f]),
    ...p.devices.flatMap((d) => ['--dev-bind', d.source, d.dest]),
    ...(p.proc ? ['--proc', '/proc'] : []),
    '--remount-ro', '/',
    '--chdir', p.chdir,
    '--',
    p.setpriv,
    ...(p.identity ? ['--reuid', String(p.identity.uid), '--regid', String(p.identity.gid), '--clear-groups', '--bounding-set', '-all'] : []),
    '--inh-caps', '-all', '--no-new-privs',
    // After the identity change, which clears it: the VMM also dies with the init itself.
    '--pdeathsig', 'KILL',
    '--',
    ...p.command,
  ];
  return args;
}
