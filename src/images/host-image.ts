import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { ownerTag } from '../util/owner-tag.js';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import { run } from '../util/exec.js';
import { buildsStores, imageStoreDisk, pruneImageCache } from './image-store.js';
import { machineFault } from '../errors/os-fault.js';
import type { Healthcheck } from '../protocol/api.js';
import { healthcheckFrom, type DockerHealthcheck } from '../protocol/healthcheck.js';
import { exposedFromImage, type ExposedPort } from '../net/publish.js';
import type { PullOptions } from '../options/podman-run-flags.js';
import { onHostLoopback, pullOnHost } from './host-pull.js';

/** An image as the guest will get it. */
export type ImagePlan =
  // `disk`: the image disk, an image store (image-store.ts) or a docker-archive where no store could be built.
  | { kind: 'archive'; ref: string; id: string; disk: string; healthcheck: Healthcheck | undefined; exposed?: ExposedPort[] }
  | { kind: 'pull'; ref: string; healthcheck: Healthcheck | undefined };

/** Names that can only mean the host's storage: localhost/..., or an image ID. */
export function isLocalOnlyRef(ref: string): boolean {
  return ref.startsWith('localhost/') || /^(sha256:)?[0-9a-f]{12,64}$/.test(ref);
}

/** The image ID, HEALTHCHECK and EXPOSE ports of `ref` in the host's podman storage, or undefined. */
export async function hostImage(ref: string): Promise<{ id: string; healthcheck: Healthcheck | undefined; exposed: ExposedPort[] } | undefined> {
  let out: string;
  try {
    out = (await run('podman', ['image', 'inspect', '--format', '{{.Id}}\n{{json .HealthCheck}}\n{{json .Config.ExposedPorts}}', ref])).trim();
  } catch {
    return undefined;
  }
  const [id = '', hcJson = 'null', exposedJson = 'null'] = out.split('\n');
  if (!/^[0-9a-f]{64}$/.test(id)) return undefined;
  const json = <T>(text: string): T | null => {
    try {
      return JSON.parse(text) as T | null;
    } catch {
      return null;
    }
  };
  return { id, healthcheck: healthcheckFrom(json<DockerHealthcheck>(hcJson)), exposed: exposedFromImage(Object.keys(json<Record<string, unknown>>(exposedJson) ?? {})) };
}

/**
 * Exports a host image to a docker-archive tar, cached by image ID (an ID names
 * immutable content, so a cached export never goes stale).
 */
export async function exportImage(id: string, cacheDir: string): Promise<string> {
  const out = join(cacheDir, `${id}.tar`);
  if (await stat(out).then((s) => s.size > 0, () => false)) return out;
  await mkdir(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `.${id}.${ownerTag()}.partial`);
  try {
    await run('podman', ['save', '--quiet', '--format', 'docker-archive', '--output', tmp, id]);
    await rename(tmp, out);
    await pruneImageCache(cacheDir);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return out;
}

/**
 * The disk that carries image `id` to the guest: an image store, which the guest runs
 * from as it is; or, if none can be built here, the image's archive, which the guest
 * loads with `podman load` (as fast on the host, a minute in the guest for a big image).
 */
async function imageDisk(id: string, cacheDir: string, warn: (line: string) => void): Promise<string> {
  if (!buildsStores()) return exportImage(id, cacheDir);
  try {
    return await imageStoreDisk(id, cacheDir);
  } catch (e) {
    // A full or read-only disk is the machine's fault, not a host without stores: said as such.
    const fault = machineFault(e, 'building an image store', cacheDir);
    if (fault) throw fault;
    const why = ((e as Error).message ?? String(e)).split('\n').filter(Boolean).pop();
    warn(`fcvm: cannot build an image store for ${id.slice(0, 12)} (${why}); the guest loads the image from its archive instead (slower; an image store needs e2fsprogs' mkfs.ext4 and podman's overlay driver)`);
    return exportImage(id, cacheDir);
  }
}

/**
 * Decides how the guest gets `ref`: from the host's storage when it is there, else by
 * a pull inside the guest (podman's --pull: always pulls, never refuses a pull). A local-only name that the host lacks is an error now,
 * before any VM boots.
 */
export async function planImage(ref: string, cacheDir: string, pull: PullOptions | undefined, warn: (line: string) => void = () => {}): Promise<ImagePlan> {
  const policy = pull?.policy ?? 'missing';
  // A registry on the host's loopback is the host's to reach: pulled there, it goes in as a host image.
  const loopback = onHostLoopback(ref);
  // --pull always: the guest pulls it fresh, whatever the host has.
  if (policy === 'always' && !loopback) return { kind: 'pull', ref, healthcheck: undefined };
  let found = policy === 'always' ? undefined : await hostImage(ref);
  if (!found && policy === 'never') throw errors.imageNotLocal(ref);
  if (!found && loopback) {
    await pullOnHost(ref, pull);
    found = await hostImage(ref);
  }
  if (found) return { kind: 'archive', ref, id: found.id, disk: await imageDisk(found.id, cacheDir, warn), healthcheck: found.healthcheck, exposed: found.exposed };
  if (isLocalOnlyRef(ref)) throw errors.imageNotFound(ref);
  return { kind: 'pull', ref, healthcheck: undefined };
}
