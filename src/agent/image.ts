import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ImageSource } from '../protocol/api.js';
import { spawn } from 'node:child_process';
import { nestedProfile } from './guest-os-binds.js';

/**
 * The /dev path of the virtio-blk disk with this serial (QEMU sets it), or the one the
 * kernel command line names as `fcvm.disk.SERIAL=vdX` (Firecracker sets no serial the
 * guest could match), or undefined.
 */
export function diskBySerial(serial: string, sysBlock = '/sys/block', cmdline = readCmdline()): string | undefined {
  const named = ` ${cmdline} `.match(new RegExp(` fcvm\\.disk\\.${serial.replace(/[^A-Za-z0-9_-]/g, '')}=(vd[a-z]+) `))?.[1];
  if (named && existsSync(`${sysBlock}/${named}`)) return `/dev/${named}`;
  for (const dev of readdirSync(sysBlock)) {
    try {
      if (readFileSync(`${sysBlock}/${dev}/serial`, 'utf8').trim() === serial) return `/dev/${dev}`;
    } catch {
      // not a virtio disk
    }
  }
  return undefined;
}

function readCmdline(): string {
  try {
    return readFileSync('/proc/cmdline', 'utf8').trim();
  } catch {
    return '';
  }
}

/** Runs a command to completion; rejects with its last stderr line. */
export function runQuiet(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code === 0) resolve(out);
      else {
        const last = err.trim().split('\n').filter(Boolean).pop() ?? `exit code ${code}`;
        reject(new Error(last.replace(/^Error: /, '')));
      }
    });
  });
}

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Files of the image prefetch that stage 2 starts at boot (see assets/guest/stage2). */
export const PREFETCH = { log: '/run/fcvm/image-load.log', rc: '/run/fcvm/image-load.rc', pid: '/run/fcvm/image-load.pid' } as const;

/**
 * How long the prefetch may take before the agent loads the image itself: while its
 * `podman load` runs, the agent waits for it (a big image takes minutes under TCG, and a
 * second load beside it only slows both); without its PID, `waitMs`.
 */
const PREFETCH_LIMITS = { waitMs: 45_000, runningMaxMs: 30 * 60_000, resultGraceMs: 5000 };

/** Whether the prefetch's `podman load` still runs: true, false, or undefined when its PID is not known. */
function prefetchRunning(pidFile: string): boolean | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits for stage 2's prefetch of the image disk; undefined if none was started, or if
 * it ended without a result or ran too long (said on the console, which a start timeout
 * quotes).
 */
export async function prefetchResult(files: { log: string; rc: string; pid: string } = PREFETCH, limits = PREFETCH_LIMITS): Promise<{ ok: boolean; log: string } | undefined> {
  if (!existsSync(files.log)) return undefined;
  const t0 = Date.now();
  while (!existsSync(files.rc)) {
    const running = prefetchRunning(files.pid);
    const limit = running === true ? limits.runningMaxMs : limits.waitMs;
    if (running === false) {
      // Its result is written just after it ends: give that a moment.
      const until = Date.now() + limits.resultGraceMs;
      while (!existsSync(files.rc) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      if (existsSync(files.rc)) break;
      process.stdout.write('fcvm-agent: the image prefetch ended without a result; loading the image again\n');
      return undefined;
    }
    if (Date.now() - t0 > limit) {
      process.stdout.write(`fcvm-agent: the image prefetch has not finished after ${Math.round(limit / 1000)}s; loading the image again\n`);
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const ok = readFileSync(files.rc, 'utf8').trim() === '0';
  return { ok, log: readFileSync(files.log, 'utf8') };
}

/**
 * Where stage 2 mounts an image store disk (src/images/image-store.ts), read-only. The
 * guest's storage.conf lists it in `additionalimagestores` (assets/rootfs/storage.conf),
 * so podman runs the image from there with nothing to load.
 */
export const GUEST_IMAGE_STORE = '/var/lib/fcvm-images';

/** Whether an image store is mounted at `dir`. */
export function storeMounted(dir = GUEST_IMAGE_STORE, mounts = '/proc/self/mounts'): boolean {
  try {
    return readFileSync(mounts, 'utf8').split('\n').some((l) => l.split(' ')[1] === dir);
  } catch {
    return false;
  }
}

/**
 * Makes the image on the disk `serial` runnable and returns the ref to run: an image
 * store that stage 2 mounted is ready as it is; an archive is loaded into the guest's podman.
 */
export async function loadArchive(serial: string, id: string, name?: string): Promise<string> {
  if (storeMounted()) return tagForInner(id, name);
  const prefetched = await prefetchResult();
  if (prefetched?.ok) return tagForInner(id, name);
  if (prefetched) process.stdout.write(`fcvm-agent: the image prefetch failed; loading the image again\n`);
  const dev = diskBySerial(serial);
  if (!dev) throw coded('IMAGE_LOAD_FAILED', `no disk with serial ${serial}`);
  try {
    await runQuiet('podman', ['load', '--quiet', '--input', dev]);
  } catch (e) {
    throw coded('IMAGE_LOAD_FAILED', `podman load from ${dev} failed: ${(e as Error).message}`);
  }
  return tagForInner(id, name);
}

/**
 * Checks that the guest's podman sees image `id`, before a startup snapshot is taken: a
 * store that does not hold it fails here, in one line. It also leaves podman's database
 * made and its binary in the page cache, which every run from the snapshot then finds
 * there (an archive's `podman load` did the same).
 */
export async function checkImage(id: string): Promise<void> {
  try {
    await runQuiet('podman', ['image', 'inspect', '--format', '{{.Id}}', id]);
  } catch (e) {
    throw coded('IMAGE_LOAD_FAILED', `the guest's podman does not see image ${id.slice(0, 12)}: ${(e as Error).message}`);
  }
}

/**
 * In a nested-profile guest, names the loaded image as the user did (`localhost/bb`), so
 * an inner fcvm run in this guest finds it in the guest's podman storage. Returns `id`.
 */
async function tagForInner(id: string, name: string | undefined): Promise<string> {
  if (!name || /^(sha256:)?[0-9a-f]{12,64}$/.test(name) || !nestedProfile()) return id;
  await runQuiet('podman', ['tag', id, name]).catch((e) => process.stdout.write(`fcvm-agent: cannot tag the image as ${name}: ${(e as Error).message}\n`));
  return id;
}

/** Where a pull's credentials and certificates live while it runs: /run is a tmpfs. */
export const PULL_DIR_PREFIX = '/run/fcvm/pull-';

/**
 * The `podman pull` argument vector. Pure. Credentials and certificates are files in
 * `dir` (never words on a command line, which /proc shows to anyone in the guest).
 */
export function pullArgs(source: Extract<ImageSource, { kind: 'pull' }>, dir: string): string[] {
  const args = ['pull', '--quiet'];
  if (source.tlsVerify === false) args.push('--tls-verify=false');
  if (source.certs?.length) args.push(`--cert-dir=${dir}/certs`);
  if (source.auth) args.push(`--authfile=${dir}/auth.json`);
  args.push(source.ref);
  return args;
}

/** Overwrites a file's bytes with zeros before it goes, so its tmpfs pages do not keep the secret. */
function wipe(path: string): void {
  try {
    const size = statSync(path).size;
    writeFileSync(path, Buffer.alloc(size));
  } catch {
    // gone already
  }
  rmSync(path, { force: true });
}

/**
 * Pulls a remote image inside the guest and returns the ref to run. The registry's
 * credentials and certificates go to owner-only files on a tmpfs for the pull only,
 * and are wiped right after, whatever happened.
 */
export async function pullImage(source: Extract<ImageSource, { kind: 'pull' }>): Promise<string> {
  const dir = mkdtempSync(PULL_DIR_PREFIX);
  const files: string[] = [];
  try {
    if (source.auth) {
      const f = join(dir, 'auth.json');
      writeFileSync(f, JSON.stringify({ auths: { [source.auth.registry]: { auth: source.auth.auth } } }), { mode: 0o600 });
      files.push(f);
    }
    if (source.certs?.length) {
      mkdirSync(join(dir, 'certs'), { mode: 0o700 });
      for (const c of source.certs) {
        const f = join(dir, 'certs', basename(c.name));
        writeFileSync(f, c.pem, { mode: 0o600 });
        files.push(f);
      }
    }
    await runQuiet('podman', pullArgs(source, dir));
  } catch (e) {
    throw coded('IMAGE_PULL_FAILED', (e as Error).message);
  } finally {
    for (const f of files) wipe(f);
    rmSync(dir, { recursive: true, force: true });
  }
  return source.ref;
}
