import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { chown } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { JailSpec } from '../../jail/spec.js';
import { jailOps } from '../../os/jail-ops.js';
import { backingChain } from './backing-chain.js';
import { BASIC_DEVICES, bwrapArgs, type JailPlan } from './bwrap.js';
import { hostFiles } from './jail-files.js';
import { follow, signalFromShellCode, spawnUnjailed, type VmmProcess } from './process.js';
import type { VmSpec } from '../driver.js';
import { firstChild, processName, sleep } from '../../util/proc.js';

/** Linux's device numbers for KVM and the TUN/TAP clone device. */
const KVM_DEV = { major: 10, minor: 232 };
const TUN_DEV = { major: 10, minor: 200 };

const RESOLV_CONF = '/etc/resolv.conf';

/** Where the jailed QEMU finds extra fds (a clone's sealed RAM first). */
export const FIRST_PASSED_FD = 3;

export interface JailedLaunch {
  qemu: string;
  setpriv: string;
  args: readonly string[];
  /** Guest RAM as QEMU maps it: a shared file is shown to it writable. */
  memory: { path: string; shared: boolean };
  /** fds QEMU gets at FIRST_PASSED_FD and on. */
  fds: readonly number[];
  /** The file the host file list is cached in. */
  cacheFile: string | undefined;
}

/**
 * Starts QEMU in its jail (see bwrapArgs): bubblewrap reports the sandbox's PID and
 * waits; fcvm moves that process into the VM's cgroup, then lets it go on, so
 * everything the VMM ever allocates or starts is counted there.
 */
export async function spawnJailed(spec: VmSpec, jail: JailSpec, l: JailedLaunch): Promise<VmmProcess> {
  (await jailOps()).closeOnExecAll();
  if (!jail.namespaces) {
    // An unprivileged user without user namespaces: QEMU's seccomp filter and no_new_privs.
    const p = spawnUnjailed(l.qemu, l.args, spec.netns, ['--no-new-privs', '--inh-caps', '-all']);
    if (jail.cgroup) await jail.cgroup.join(p.pid).catch(() => {});
    return p;
  }
  const plan: JailPlan = {
    host: await hostFiles([l.qemu, l.setpriv], l.cacheFile),
    ...(await jailFiles(spec, l.memory)),
    devices: await devices(spec, jail),
    proc: l.fds.length > 0,
    userNamespace: jail.mode === 'user',
    identity: jail.mode === 'full' ? { uid: jail.uid, gid: jail.gid } : undefined,
    chdir: spec.runDir,
    infoFd: FIRST_PASSED_FD + l.fds.length,
    blockFd: FIRST_PASSED_FD + l.fds.length + 1,
    setpriv: l.setpriv,
    // By name, found through PATH: its command line reads as any QEMU's (ps, pgrep).
    command: [basename(l.qemu), ...l.args],
    path: dirname(l.qemu),
  };
  const argv = bwrapArgs(plan);
  const ns = spec.netns ? ['nsenter', `--net=/run/netns/${spec.netns}`, '--', 'bwrap'] : ['bwrap'];
  // Its own session: a terminal's ^C goes to fcvm, which stops the container gracefully.
  const child = spawn(ns[0]!, [...ns.slice(1), ...argv], { stdio: ['ignore', 'ignore', 'pipe', ...l.fds, 'pipe', 'pipe'], detached: true });
  const f = follow(child, signalFromShellCode);
  const info = child.stdio[plan.infoFd] as Readable;
  const block = child.stdio[plan.blockFd] as Writable;
  block.on('error', () => {});
  const pid = await sandboxPid(info, f.exited);
  let started = false;
  const kill = () => {
    if (f.done()) return;
    try {
      process.kill(pid ?? child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  };
  try {
    if (pid === undefined) throw new Error((await f.lastError()) ?? 'bubblewrap did not start the sandbox');
    if (jail.cgroup) await jail.cgroup.join(pid);
    block.end('go');
    const vmm = await initsChild(pid, basename(l.qemu), f.exited);
    if (vmm === undefined) throw new Error((await f.lastError()) ?? 'the jail ended before QEMU started');
    started = true;
    return { pid: vmm, exited: f.exited, kill, lastError: f.lastError };
  } finally {
    if (!started) kill();
  }
}

/**
 * QEMU's PID: the child of bubblewrap's init once setpriv has exec'd `program` (until
 * then the child bears bubblewrap's or setpriv's name), or undefined if the jail ended first.
 */
async function initsChild(init: number, program: string, exited: Promise<unknown>): Promise<number | undefined> {
  const name = program.slice(0, 15); // the kernel keeps 15 bytes of it
  let ended = false;
  void exited.then(() => (ended = true));
  for (let wait = 1; !ended; wait = Math.min(wait * 2, 20)) {
    const child = firstChild(init);
    if (child !== undefined && processName(child) === name) return child;
    await sleep(wait);
  }
  return undefined;
}

/** The sandbox's PID from bubblewrap's info fd ({"child-pid": N}), or undefined if it died first. */
async function sandboxPid(info: Readable, exited: Promise<unknown>): Promise<number | undefined> {
  let text = '';
  info.setEncoding('utf8');
  return new Promise<number | undefined>((resolve) => {
    info.on('data', (d: string) => {
      text += d;
      const m = text.match(/"child-pid"\s*:\s*(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    info.on('error', () => resolve(undefined));
    info.on('end', () => resolve(undefined));
    void exited.then(() => resolve(undefined));
  });
}

/** The files of `spec` the VMM opens: its directory and RAM (writable); kernel, initrd, read-only disks and every disk's backing chain. */
async function jailFiles(spec: VmSpec, memory: { path: string; shared: boolean }): Promise<{ readOnly: string[]; writable: string[] }> {
  const inRunDir = (p: string) => p === spec.runDir || p.startsWith(`${spec.runDir}/`);
  const writable = [spec.runDir];
  const readOnly = [spec.kernel, ...(spec.initrd ? [spec.initrd] : [])];
  if (memory.shared && !inRunDir(memory.path)) writable.push(memory.path);
  for (const d of spec.disks) {
    if (!inRunDir(d.path)) (d.readOnly ? readOnly : writable).push(d.path);
    if (d.format === 'qcow2') for (const b of await backingChain(d.path)) if (!inRunDir(b)) readOnly.push(b);
  }
  // QEMU's user-mode network answers the guest's DNS from the host's resolvers.
  if (spec.nics.some((n) => n.kind === 'user') && existsSync(RESOLV_CONF)) readOnly.push(RESOLV_CONF);
  return { readOnly: [...new Set(readOnly)], writable: [...new Set(writable)] };
}

/**
 * The devices the VMM needs. Root's jail gets device nodes of its own, owned by the VM's
 * uid (as Firecracker's jailer makes them), in the private directory it never sees:
 * /dev/net/tun to attach its TAP, /dev/kvm under KVM. The host's nodes stay as they are.
 */
async function devices(spec: VmSpec, jail: JailSpec): Promise<{ source: string; dest: string }[]> {
  const out = BASIC_DEVICES.map((d) => ({ source: d, dest: d }));
  const own = async (name: string, dev: { major: number; minor: number }, dest: string) => {
    if (jail.mode !== 'full') return out.push({ source: dest, dest });
    const path = join(jail.privateDir, name);
    (await jailOps()).mknodChar(path, dev.major, dev.minor, 0o600);
    await chown(path, jail.uid, jail.gid);
    out.push({ source: path, dest });
  };
  if (spec.accel === 'kvm') await own('kvm', KVM_DEV, '/dev/kvm');
  if (spec.nics.some((n) => n.kind === 'tap')) await own('tun', TUN_DEV, '/dev/net/tun');
  return out;
}
