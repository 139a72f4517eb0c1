import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ownerTag } from '../util/owner-tag.js';
import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import type { PullOptions } from '../options/podman-run-flags.js';
import { registryOf } from '../options/registry-auth.js';
import { run } from '../util/exec.js';
import { describePullFailure } from './pull-failure.js';

/**
 * A registry on the host's own loopback (`localhost:5000/app`, `127.0.0.1:5000/app`,
 * `[::1]:5000/app`), which a guest cannot reach by that name: its loopback is its own.
 * `localhost/NAME` without a port is podman's name for local storage, not a registry. Pure.
 */
export function onHostLoopback(ref: string): boolean {
  if (!ref.includes('/')) return false;
  const registry = ref.slice(0, ref.indexOf('/'));
  return /^localhost:\d{1,5}$/.test(registry) || /^127(\.\d{1,3}){3}(:\d{1,5})?$/.test(registry) || /^\[::1\](:\d{1,5})?$/.test(registry);
}

/** A host pull's directory in /tmp: its auth file and CA. */
export const PULL_DIR_PREFIX = '.fcvm-pull.';
const pullDir = () => join('/tmp', `${PULL_DIR_PREFIX}${ownerTag()}.partial`);

/** Overwrites a file with zeros before removing it, so the secret does not stay on disk. */
function wipe(path: string): void {
  try {
    writeFileSync(path, Buffer.alloc(statSync(path).size));
  } catch {
    // gone already
  }
  rmSync(path, { force: true });
}

/**
 * Pulls `ref` into the host's podman storage, as `podman pull` would, with the run's TLS
 * choice, CA and credentials. The credentials go to an owner-only auth file for the
 * pull only (never a word on a command line, which /proc shows to every user), and are
 * wiped after, whatever happened. A failure is one line, as a pull in the guest's is.
 */
export async function pullOnHost(ref: string, pull: PullOptions | undefined): Promise<void> {
  // Owner-only, named after this process: a killed fcvm's is reaped with its credentials (src/state/reaper.ts).
  const dir = pullDir();
  mkdirSync(dir, { mode: 0o700 });
  const auth = join(dir, 'auth.json');
  try {
    const args = ['pull', '--quiet'];
    if (pull?.tlsVerify === false) args.push('--tls-verify=false');
    if (pull?.certs?.length) {
      mkdirSync(join(dir, 'certs'), { mode: 0o700 });
      for (const c of pull.certs) writeFileSync(join(dir, 'certs', basename(c.name)), c.pem, { mode: 0o600 });
      args.push(`--cert-dir=${join(dir, 'certs')}`);
    }
    // Always a file of its own: the credentials fcvm chose (as a guest's pull gets), and no others from podman's defaults.
    writeFileSync(auth, JSON.stringify({ auths: pull?.auth ? { [pull.auth.registry]: { auth: pull.auth.auth } } : {} }), { mode: 0o600 });
    args.push(`--authfile=${auth}`);
    await run('podman', [...args, ref]);
  } catch (e) {
    if (!isFcvmError(e) || e.code !== 'COMMAND_FAILED') throw e;
    const d = describePullFailure(ref, e.message, { tlsVerify: pull?.tlsVerify ?? true, hasCerts: Boolean(pull?.certs?.length), hasAuth: Boolean(pull?.auth), network: 'host' });
    throw errors.imagePullFailed(ref, registryOf(ref), d.cause, d.hint);
  } finally {
    wipe(auth);
    rmSync(dir, { recursive: true, force: true });
  }
}
