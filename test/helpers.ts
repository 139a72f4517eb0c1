import { execa, type ResultPromise } from 'execa';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { defaultBaseDir, layoutFor } from '../src/setup/layout.js';
import { existingCgroupParentsSync } from '../src/jail/cgroup-host.js';
import { idAlive } from '../src/state/reaper.js';

export const CLI = resolve('dist/fcvm.mjs');
export const baseDir = defaultBaseDir();
export const layout = layoutFor(baseDir);

export interface Result {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the fcvm CLI to completion as a user would, never throwing on failure. */
export async function fcvm(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Result> {
  const r = await execa(process.execPath, ['--', CLI, ...args], {
    reject: false,
    stdin: 'ignore',
    stripFinalNewline: false,
    env: { ...opts.env },
    timeout: opts.timeoutMs ?? 240_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Starts the fcvm CLI and returns the running process, for long-running VMs. */
export function spawnFcvm(args: string[], env: Record<string, string> = {}): ResultPromise {
  return execa(process.execPath, ['--', CLI, ...args], { reject: false, stdin: 'ignore', buffer: true, all: true, forceKillAfterDelay: false, env });
}

/**
 * Skips the test, loudly, unless real VMs can run here: root, QEMU, and `fcvm setup` done.
 * Returns true when the test may go on.
 */
export function vmsAvailable(t: TestContext): boolean {
  const why = vmsUnavailableReason();
  if (why) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: ${why} ***\n`);
    t.skip(why);
    return false;
  }
  return true;
}

/** Why real VMs cannot run here, or undefined if they can. */
export function vmsUnavailableReason(): string | undefined {
  return process.getuid?.() !== 0 ? 'needs root'
    : !existsSync('/usr/bin/qemu-system-x86_64') ? 'needs qemu-system-x86'
    : !existsSync(layout.manifest) ? `needs "fcvm setup" in ${baseDir}`
    : undefined;
}

/** fcvm's own lines on stderr: its log lines ("[12:00:00.000] WARN: ...") and its "fcvm: " and setup lines. */
const OWN_LINE = /^(\[\d\d:\d\d:\d\d\.\d{3}\] [A-Z]+:|fcvm: |setup: )/;

/**
 * Lines of a foreground run's container output: its stdout is fcvm's stdout, its stderr
 * is fcvm's stderr without fcvm's own lines (as podman run prints them).
 */
export function ctrLines(r: { stdout: string; stderr: string }, stream: 'out' | 'err'): string[] {
  const text = stream === 'out' ? r.stdout : r.stderr;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return stream === 'out' ? lines : lines.filter((l) => !OWN_LINE.test(l));
}

/** PIDs of VMM processes (QEMU, or Firecracker in a disk directory) that belong to this base directory's VMs. */
export function vmmPids(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.startsWith('qemu-system') && cmd.includes(layout.vmRuntime)) pids.push(Number(d));
      else if (/(^|\/)firecracker\0/.test(cmd) && readlinkSync(`/proc/${d}/cwd`).startsWith(layout.vmmDirs)) pids.push(Number(d));
    } catch {
      // gone
    }
  }
  return pids;
}

/** The hypervisor the integration run is for (scripts/run-tests.mjs runs the suite once per usable one). */
export const hypervisor = process.env.FCVM_HYPERVISOR ?? 'qemu';

const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')) : []);

/** Asserts that no VMM process, state file, run directory, RAM file or memory server is left. */
export function assertNoLeftovers(): void {
  assert.deepEqual(vmmPids(), [], 'no VMM processes left');
  assert.deepEqual(list(layout.vmState), [], 'no state files left');
  assert.deepEqual(list(layout.vmRuntime), [], 'no run directories left');
  assert.deepEqual(list(layout.vmmDirs), [], 'no disk directories left');
  assert.deepEqual(ownShmFiles().filter((f) => f.startsWith('fcvm-mem-')), [], 'no RAM files left');
  assert.deepEqual(list(layout.serveState), [], 'no memory server files left');
  assert.deepEqual(deadVmCgroups(), [], 'no cgroups of dead VMs left');
  const partial = existsSync(layout.snapshots) ? readdirSync(layout.snapshots).filter((f) => f.endsWith('.partial')) : [];
  assert.deepEqual(partial, [], 'no half-written snapshots left');
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function waitFor<T>(fn: () => T | Promise<T>, ms: number, what: string): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const stateFile = (name: string) => join(layout.vmState, `${name}.json`);

/** VM cgroups (named by VM id) whose supervisor is gone, wherever this host keeps them. */
export function deadVmCgroups(): string[] {
  return existingCgroupParentsSync().flatMap((p) => (existsSync(p) ? readdirSync(p) : []).filter((n) => /^[0-9a-f]{6}-\d+-\d+$/.test(n) && !idAlive(n)).map((n) => join(p, n)));
}

/** A VMM's fds that name a file its root does not hold (an fd of a file outside its jail would be a way out). */
export function fdsOutsideJail(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    return target.startsWith('/') && !target.startsWith('/memfd:') && !existsSync(`/proc/${pid}/root${target.replace(/ \(deleted\)$/, '')}`) ? [`${fd} -> ${target}`] : [];
  });
}

/**
 * Every path under the base directory and every fcvm file in /dev/shm, except the
 * artifacts and caches: what a VM may leave outside its run directory.
 */
export function filesOutsideRunDirs(): string[] {
  const out: string[] = [];
  const skip = new Set([layout.artifacts, join(baseDir, 'cache'), layout.vmRuntime]);
  const walk = (dir: string) => {
    for (const f of existsSync(dir) ? readdirSync(dir, { withFileTypes: true }) : []) {
      const p = join(dir, f.name);
      if (skip.has(p)) continue;
      out.push(p);
      if (f.isDirectory()) walk(p);
    }
  };
  walk(baseDir);
  out.push(...ownShmFiles().map((f) => `/dev/shm/${f}`));
  return out.sort();
}

/** A process's resident and peak resident memory, in KiB (undefined once it is gone). */
export function memoryKiB(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (k: string) => Number(s.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))?.[1]);
    return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
  } catch {
    return undefined;
  }
}

/**
 * fcvm's files in /dev/shm that belong to this base directory: those whose owner (the
 * PID in the name, "fcvm-mem-HEX-PID-START") is dead, or runs with this base directory.
 * Other checkouts' VMs on the same machine are not this suite's leftovers.
 */
export function ownShmFiles(): string[] {
  return readdirSync('/dev/shm').filter((f) => {
    if (!f.startsWith('fcvm')) return false;
    const pid = f.split('-')[3];
    let env: string;
    let argv: string[];
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'utf8');
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      return true;
    }
    const flag = argv.indexOf('--base-dir');
    const fromEnv = env.match(/(?:^|\0)FCVM_BASE_DIR=([^\0]*)/)?.[1];
    const theirs = flag >= 0 ? argv[flag + 1]! : fromEnv || '/var/lib/fcvm';
    return resolve(theirs) === baseDir;
  });
}
