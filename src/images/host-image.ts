import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import { run } from '../util/exec.js';

/** An image as the guest will get it. */
export type ImagePlan =
  | { kind: 'archive'; ref: string; id: string; archive: string }
  | { kind: 'pull'; ref: string };

/** Names that can only mean the host's storage: localhost/..., or an image ID. */
export function isLocalOnlyRef(ref: string): boolean {
  return ref.startsWith('localhost/') || /^(sha256:)?[0-9a-f]{12,64}$/.test(ref);
}

/** The image ID of `ref` in the host's podman storage, or undefined. */
export async function hostImageId(ref: string): Promise<string | undefined> {
  try {
    const id = (await run('podman', ['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
    return /^[0-9a-f]{64}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Exports a host image to a docker-archive tar, cached by image ID (an ID names
 * immutable content, so a cached export never goes stale).
 */
export async function exportImage(id: string, cacheDir: string): Promise<string> {
  const out = join(cacheDir, `${id}.tar`);
  if (await stat(out).then((s) => s.size > 0, () => false)) return out;
  await mkdir(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `.${id}.${randomBytes(3).toString('hex')}.partial`);
  try {
    await run('podman', ['save', '--quiet', '--format', 'docker-archive', '--output', tmp, id]);
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return out;
}

/**
 * Decides how the guest gets `ref`: from the host's storage when it is there, else by
 * a pull inside the guest. A local-only name that the host lacks is an error now,
 * before any VM boots.
 */
export async function planImage(ref: string, cacheDir: string): Promise<ImagePlan> {
  const id = await hostImageId(ref);
  if (id) return { kind: 'archive', ref, id, archive: await exportImage(id, cacheDir) };
  if (isLocalOnlyRef(ref)) throw errors.imageNotFound(ref);
  return { kind: 'pull', ref };
}
