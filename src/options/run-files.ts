import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { errors } from '../errors/catalogue.js';
import type { CertFile } from '../protocol/api.js';
import type { PodmanRunFlags, RunFiles } from './podman-run-flags.js';
import { defaultAuthFiles } from './registry-auth.js';

const MAX_FILE = 1 << 20;
const MAX_CERT = 64 << 10;
const MAX_CERTS = 16;

async function readSmall(flag: string, path: string, hint: string, max = MAX_FILE): Promise<string> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    size = s.size;
  } catch (e) {
    throw errors.invalidOption(flag, path, `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, hint);
  }
  if (size > max) throw errors.invalidOption(flag, path, `it is ${size} bytes, the limit is ${max}`, hint);
  return readFile(path, 'utf8');
}

/** podman's --cert-dir: the *.crt (CA), *.cert and *.key (client pair) files in it. */
async function readCertDir(dir: string): Promise<CertFile[]> {
  const hint = 'Give a directory holding the registry\'s CA as ca.crt (and a client NAME.cert with NAME.key, if it wants one)';
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    throw errors.invalidOption('--cert-dir', dir, `cannot read it (${e.code ?? e.message})`, hint);
  });
  const wanted = names.filter((n) => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.(crt|cert|key)$/.test(n)).sort();
  if (wanted.length === 0) throw errors.invalidOption('--cert-dir', dir, 'it holds no .crt, .cert or .key files', hint);
  if (wanted.length > MAX_CERTS) throw errors.invalidOption('--cert-dir', dir, `it holds ${wanted.length} certificate files, the limit is ${MAX_CERTS}`, hint);
  const files: CertFile[] = [];
  for (const name of wanted) files.push({ name, pem: await readSmall('--cert-dir', join(dir, name), hint, MAX_CERT) });
  return files;
}

/** The host's time zone by name, as podman's --tz local takes it: the link /etc/localtime (…/zoneinfo/Europe/Paris), else UTC. */
async function hostZone(): Promise<string> {
  const link = await readlink('/etc/localtime').catch(() => '');
  return link.match(/zoneinfo\/(.+)$/)?.[1] ?? 'UTC';
}

/** Reads the files that run flags name (--env-file, --label-file, --authfile, --cert-dir, podman's own auth files), and the host's zone for --tz local. */
export async function readRunFiles(flags: PodmanRunFlags, env: NodeJS.ProcessEnv = process.env): Promise<RunFiles> {
  const files: RunFiles = {};
  if (flags.envFile?.length) {
    files.envFiles = [];
    for (const p of flags.envFile) files.envFiles.push({ path: p, text: await readSmall('--env-file', resolve(p), 'Give a readable file of KEY=VALUE lines') });
  }
  if (flags.labelFile?.length) {
    files.labelFiles = [];
    for (const p of flags.labelFile) files.labelFiles.push({ path: p, text: await readSmall('--label-file', resolve(p), 'Give a readable file of KEY=VALUE lines') });
  }
  if ((flags as { tz?: string }).tz === 'local') files.hostZone = await hostZone();
  if (flags.authfile !== undefined) {
    files.authfile = { path: flags.authfile, text: await readSmall('--authfile', resolve(flags.authfile), 'Give podman\'s auth.json, as "podman login --authfile FILE REGISTRY" writes it') };
  } else if (flags.creds === undefined) {
    files.defaultAuthFiles = [];
    for (const p of defaultAuthFiles(env, process.getuid?.() ?? 0, env.HOME || homedir())) {
      const text = await readFile(p, 'utf8').catch(() => undefined);
      if (text !== undefined && text.length <= MAX_FILE) files.defaultAuthFiles.push({ path: p, text });
    }
  }
  if (flags.certDir !== undefined) files.certDir = { path: resolve(flags.certDir), files: await readCertDir(resolve(flags.certDir)) };
  return files;
}
