import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { ownerTag } from '../util/owner-tag.js';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import { run } from '../util/exec.js';
import { hashFile } from './content-address.js';

/** What apt knows of the candidate version of a package. */
export interface DebInfo {
  name: string;
  version: string;
  sha256: string;
  depends: string[];
}

/** Parses `apt-cache show --no-all-versions` output (one stanza). Pure. */
export function parseAptShow(text: string): DebInfo {
  const field = (k: string) => text.match(new RegExp(`^${k}: (.*)$`, 'm'))?.[1]?.trim();
  const name = field('Package');
  const version = field('Version');
  const sha256 = field('SHA256');
  if (!name || !version || !sha256) throw new Error('apt-cache output lacks Package, Version or SHA256');
  const depends = (field('Depends') ?? '')
    .split(',')
    .map((d) => d.trim().split(/[\s(|]/)[0]!)
    .filter(Boolean);
  return { name, version, sha256, depends };
}

export async function debInfo(pkg: string): Promise<DebInfo> {
  let out: string;
  try {
    out = await run('apt-cache', ['show', '--no-all-versions', pkg]);
  } catch (e) {
    throw errors.preflight(`package ${pkg}`, 'apt does not know it', 'Run "apt-get update" and try again');
  }
  if (!out.trim()) throw errors.preflight(`package ${pkg}`, 'apt does not know it', 'Run "apt-get update" and try again');
  return parseAptShow(out);
}

/** The versioned kernel package that the `linux-image-cloud-amd64` meta package points at. */
export async function kernelDebInfo(meta = 'linux-image-cloud-amd64'): Promise<DebInfo> {
  const m = await debInfo(meta);
  const real = m.depends.find((d) => d.startsWith('linux-image-'));
  if (!real) throw errors.preflight(`package ${meta}`, 'has no linux-image dependency', 'Run "apt-get update" and try again');
  return debInfo(real);
}

/** Downloads the .deb (or reuses a verified copy) and returns its path. */
export async function fetchDeb(info: DebInfo, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const existing = (await readdir(dir)).filter((f) => f.startsWith(`${info.name}_`) && f.endsWith('.deb'));
  for (const f of existing) {
    const p = join(dir, f);
    if ((await hashFile(p)) === info.sha256) return p;
    await rm(p, { force: true });
  }
  // Into a directory of its own, moved into place only when whole: a failed or killed
  // download (a full disk) leaves no partial .deb (the reaper removes the directory).
  const tmp = join(dir, `.download-${info.name}.${ownerTag()}.partial`);
  await mkdir(tmp, { recursive: true });
  try {
    await run('apt-get', ['download', '-q', `${info.name}=${info.version}`], { cwd: tmp });
    for (const f of await readdir(tmp)) {
      if (!f.startsWith(`${info.name}_`) || !f.endsWith('.deb')) continue;
      if ((await hashFile(join(tmp, f))) !== info.sha256) continue;
      await rename(join(tmp, f), join(dir, f));
      return join(dir, f);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  throw errors.setupFailed(`download ${info.name}`, new Error('the downloaded .deb does not match apt\'s SHA256'));
}

/** Extracts a .deb's files into `dest`. */
export async function extractDeb(deb: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  await run('dpkg-deb', ['-x', deb, dest]);
}
