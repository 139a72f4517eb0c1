import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';

/** The unprivileged user the rootless tests run fcvm as (created on first use). */
export const USER = 'fcvm-it-user';

export type AsUser = (cmd: string, args: string[]) => ReturnType<typeof execa>;

/**
 * Makes USER ready to run fcvm from this checkout: the user exists, can read the CLI
 * (copied somewhere readable if the checkout is private, /root say) and has
 * localhost/bb in its own podman storage. Returns a runner and the CLI's path.
 */
export async function rootlessUser(t: TestContext): Promise<{ asUser: AsUser; cli: string }> {
  try {
    execFileSync('id', [USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', '-s', '/bin/sh', USER]);
  }
  // Whatever the test's user started (podman's rootless pause process) goes with it.
  t.after(() => removeUser());
  // runuser keeps the environment: the user's fcvm must use its own base dir, not the test run's.
  const asUser: AsUser = (cmd, args) => execa('runuser', ['-u', USER, '--', cmd, ...args], { cwd: '/tmp', reject: false, stdin: 'ignore', forceKillAfterDelay: false, env: { FCVM_BASE_DIR: undefined } });
  let root = process.cwd();
  if ((await asUser('test', ['-r', join(root, 'dist', 'fcvm.mjs'), '-a', '-r', join(root, 'busybox-rootfs.tar')])).exitCode !== 0) {
    root = mkdtempSync(join(tmpdir(), 'fcvm-it-checkout-'));
    chmodSync(root, 0o755);
    // Registered before the copy: a part that is missing (busybox-rootfs.tar, which
    // scripts/make-test-image.sh puts in a checkout) must not leave the copy behind.
    const copy = root;
    t.after(() => rmSync(copy, { recursive: true, force: true }));
    for (const part of ['package.json', 'dist', 'assets', 'node_modules', 'busybox-rootfs.tar']) cpSync(join(process.cwd(), part), join(root, part), { recursive: true });
  }
  const imp = await asUser('podman', ['import', '--quiet', '--change', 'CMD ["/bin/sh"]', join(root, 'busybox-rootfs.tar'), 'localhost/bb']);
  assert.equal(imp.exitCode, 0, String(imp.stderr));
  return { asUser, cli: join(root, 'dist', 'fcvm.mjs') };
}

/** Asserts USER has no fcvm processes, VMs or run directories left. */
export function assertUserLeftNothing(): void {
  const procs = execFileSync('ps', ['-u', USER, '-o', 'comm='], { encoding: 'utf8' }).split('\n').filter((p) => /qemu|node/.test(p));
  assert.deepEqual(procs, []);
  const left = execFileSync('sh', ['-c', `ls -A ~${USER}/.local/share/fcvm/vms ~${USER}/.local/share/fcvm/state/vms ~${USER}/.local/share/fcvm/state/serves 2>/dev/null; true`], { encoding: 'utf8' });
  assert.equal(left.replace(/^\/.*:$/gm, '').trim(), '');
}

/**
 * Ends USER's podman pause process (rootless podman keeps one to hold its user
 * namespace, and it outlives every command) and removes the user with its home, so
 * the suite leaves no process or account behind. The next test creates it again.
 */
export function removeUser(): void {
  let uid: string;
  try {
    uid = execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim();
  } catch {
    return;
  }
  for (const pidFile of [`/run/user/${uid}/libpod/tmp/pause.pid`, `/tmp/podman-run-${uid}/libpod/tmp/pause.pid`]) {
    let pid: number;
    try {
      pid = Number(readFileSync(pidFile, 'utf8').trim());
    } catch {
      continue;
    }
    // Only if that PID really is a process of USER's.
    const owner = (() => {
      try {
        return readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1];
      } catch {
        return undefined;
      }
    })();
    if (pid > 1 && owner === uid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
  const userProcs = () => spawnSync('ps', ['-u', USER, '-o', 'pid='], { encoding: 'utf8' }).stdout.trim();
  for (let i = 0; i < 50 && userProcs() !== ''; i++) spawnSync('sleep', ['0.1']);
  rmSync(`/tmp/podman-run-${uid}`, { recursive: true, force: true });
  try {
    execFileSync('userdel', ['-r', USER], { stdio: 'ignore' });
  } catch {
    // a process of the user is still there: the next run finds the user and goes on
  }
}

/**
 * Watches a process started with `asUser`: the returned check throws, with its exit code
 * and the end of its stderr, once it has ended. A wait for its VM then fails at once,
 * saying why, instead of running into its timeout.
 */
export function endsEarly(what: string, proc: ReturnType<AsUser>): () => void {
  let ended: string | undefined;
  void proc.then((r) => (ended = `exit ${r.exitCode}: ${String(r.stderr).slice(-1500)}`));
  return () => {
    if (ended) throw new Error(`${what} ended early (${ended})`);
  };
}
