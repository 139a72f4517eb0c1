/**
 * What the VMM jail's integration tests read and run: `fcvm ls --json` with its jail,
 * /proc of a VMM, the escape-drill probe (test/fixtures/jail-probe.py), a VM's files, and
 * the one check every jailed VMM must pass (assertJailed).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { fcvm, fdsOutsideJail, stateFile, waitFor } from './helpers.js';
import { isJailId } from '../src/jail/identity.js';

export interface Jail {
  mode: string;
  uid?: number;
  gid?: number;
  root?: string;
  namespaces?: string[];
  cgroup?: { version: 1 | 2; dirs: string[]; memoryBytes: number; pids: number; cpuWeight: number };
  cgroupWhy?: string;
  seccomp?: string;
}
export interface Listed {
  name: string;
  pid: number;
  vmmPid: number;
  status: string;
  network: { netns?: string };
  jail?: Jail;
  startupSnapshot?: string;
}
export interface Drill { op: string; target: string | number; ok: boolean; errno: string | null }

export const PROBE = resolve('test/fixtures/jail-probe.py');
export const ls = async () => JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as Listed[];
export const running = (name: string, proc: ResultPromise) => {
  let ended: string | undefined;
  void proc.then((r) => (ended = `exit ${r.exitCode}: ${String(r.all).slice(-1500)}`));
  return waitFor(async () => {
    if (ended) throw new Error(`${name}'s supervisor ended early (${ended})`);
    return (await ls()).find((v) => v.name === name && v.status === 'healthy');
  }, 240_000, `${name} healthy`);
};

/** /proc/PID/status as a map. */
export function status(pid: number): Map<string, string> {
  return new Map(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
}
export const ns = (pid: number | 'self', name: string) => readlinkSync(`/proc/${pid}/ns/${name}`);

/** Runs the escape-drill probe (test/fixtures/jail-probe.py) as root. */
export async function probe(mode: 'jail' | 'uid' | 'bomb', target: string | number, uid: number, gid: number, drills: object[] = []) {
  const r = await execa('python3', [PROBE, mode, String(target), String(uid), String(gid)], { input: JSON.stringify(drills), reject: false, timeout: 60_000 });
  assert.equal(r.exitCode, 0, `probe ${mode}: ${r.stderr}`);
  return JSON.parse(String(r.stdout).trim().split('\n').pop()!) as { entered?: string[]; filters?: number; killedBy?: string; results?: Drill[]; forks?: number; error?: string };
}

/** The files of a running VM that another VM's VMM must never reach. */
export function filesOf(name: string) {
  const s = JSON.parse(readFileSync(stateFile(name), 'utf8')) as { id: string; runDir: string };
  const ram = existsSync(`/dev/shm/fcvm-mem-${s.id}`) ? `/dev/shm/fcvm-mem-${s.id}` : join(s.runDir, 'vmm', 'memory');
  return { id: s.id, runDir: s.runDir, disk: join(s.runDir, 'vmm', 'root.qcow2'), ram, control: join(s.runDir, 'control.sock'), qmp: join(s.runDir, 'vmm', 'qmp.sock'), agent: join(s.runDir, 'vmm', 'agent.sock') };
}

/**
 * Asserts VM `c`'s VMM is jailed as a cold VM's is: a uid of its own (none of `others`),
 * no capabilities, no_new_privs, seccomp, its own namespaces and root, no descriptor from
 * outside its jail, and its VM's cgroup with its pids limit.
 */
export function assertJailed(c: Listed, others: (number | undefined)[]): void {
  const s = status(c.vmmPid);
  const uid = Number(s.get('Uid')!.split(/\s+/)[0]);
  assert.equal(c.jail?.mode, 'full', `${c.name}'s jail`);
  assert.ok(isJailId(uid) && uid === c.jail?.uid && !others.includes(uid), `${c.name}'s own uid (${uid})`);
  for (const cap of ['CapEff', 'CapPrm', 'CapBnd']) assert.equal(s.get(cap), '0000000000000000', cap);
  assert.deepEqual([s.get('NoNewPrivs'), s.get('Seccomp')], ['1', '2']);
  for (const n of ['mnt', 'pid', 'ipc', 'uts']) assert.notEqual(ns(c.vmmPid, n), ns('self', n), n);
  assert.ok(!existsSync(`/proc/${c.vmmPid}/root/etc/shadow`));
  assert.deepEqual(fdsOutsideJail(c.vmmPid), []);
  const cg = c.jail!.cgroup!;
  const dir = cg.dirs.find((d) => existsSync(join(d, 'pids.max')))!;
  assert.equal(Number(readFileSync(join(dir, 'pids.max'), 'utf8')), cg.pids);
  assert.ok(readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').includes(String(c.vmmPid)), `${c.name}'s VMM is in its cgroup`);
}

/** The QEMU processes below process `ancestor`. */
export function qemusBelow(ancestor: number): number[] {
  const ppid = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
  const below = (pid: number) => {
    for (let p = pid; p > 1; p = ppid(p)) if (p === ancestor) return true;
    return false;
  };
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('qemu-system') && below(pid);
    } catch {
      return false;
    }
  });
}
