import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ownerTag } from '../util/owner-tag.js';
import type { CgroupHost } from './cgroup.js';
import { cgroupDir, ownPath, parseCgroupMounts, parseProcCgroup, type CgroupMount } from './cgroup-mounts.js';
import { cgroupV1Host, writableDir } from './cgroup-v1.js';
import { cgroupV2Host, delegateControllers, V2_REQUIRED } from './cgroup-v2.js';
import { writeControl } from './cgroup-fs.js';

/** The cgroups this host gives fcvm, or why it gives none. */
export type CgroupChoice = { host: CgroupHost; why?: undefined } | { host: undefined; why: string };

/** The name of the subtree fcvm makes VM cgroups in. */
export const CGROUP_SUBTREE = 'fcvm';

/**
 * Picks where VM cgroups go on this host:
 * - cgroup v2 with the memory and pids controllers: as root, `/sys/fs/cgroup/fcvm/ID`;
 *   as another user, inside the cgroup fcvm runs in if it is delegated to that user
 *   (fcvm moves itself into a leaf of it first, as v2 requires).
 * - otherwise cgroup v1 (as root): `ID` under `fcvm/` below fcvm's own cgroup in the
 *   memory and pids hierarchies (no CPU weight: see v1Host).
 * - otherwise none, and why.
 */
export async function hostCgroups(uid = process.getuid?.() ?? 0): Promise<CgroupChoice> {
  const mounts = parseCgroupMounts(await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''));
  const own = parseProcCgroup(await readFile('/proc/self/cgroup', 'utf8').catch(() => ''));
  const v2 = mounts.find((m) => m.version === 2);
  let v2Why: string | undefined;
  if (v2) {
    const available = (await readFile(join(v2.dir, 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/);
    if (V2_REQUIRED.every((c) => available.includes(c))) {
      const r = uid === 0 ? await rootV2(v2) : await delegatedV2(v2, own.get(''));
      if (typeof r !== 'string') return { host: r };
      v2Why = r;
    } else v2Why = `cgroup v2 at ${v2.dir} has no ${V2_REQUIRED.filter((c) => !available.includes(c)).join(' or ')} controller`;
  }
  const r = await v1Host(mounts, own, uid);
  if (typeof r !== 'string') return { host: r };
  return { host: undefined, why: v2Why ? `${v2Why}, and ${r}` : r };
}

async function rootV2(m: CgroupMount): Promise<CgroupHost | string> {
  const parent = join(m.dir, CGROUP_SUBTREE);
  try {
    await mkdir(parent, { recursive: true, mode: 0o755 });
    return cgroupV2Host(parent, await delegateControllers(m.dir, parent));
  } catch (e) {
    return `cannot set up ${parent}: ${(e as Error).message}`;
  }
}

/**
 * A user's VM cgroups go inside the cgroup fcvm runs in, when that one is the user's
 * own (delegated, as `systemd-run --user --scope -p Delegate=yes` makes it). A v2
 * cgroup that hands controllers down may hold no processes, so fcvm first moves itself
 * into a leaf of its own ("supervisor-PID-START", reaped when it is empty and its owner gone).
 */
async function delegatedV2(m: CgroupMount, path: string | undefined): Promise<CgroupHost | string> {
  if (path === undefined) return 'this process is in no cgroup v2';
  const own = cgroupDir(m, path);
  if (!(await writableDir(own))) return `the cgroup fcvm runs in (${path}) is not delegated to you`;
  try {
    const leaf = join(own, `supervisor-${ownerTag()}`);
    await mkdir(leaf, { recursive: true });
    await writeControl(leaf, 'cgroup.procs', process.pid);
    return cgroupV2Host(own, await delegateControllers(own, own));
  } catch (e) {
    return `cannot use the cgroup fcvm runs in (${path}) for VMs (${(e as Error).message}); run fcvm in a delegated cgroup of its own, e.g. systemd-run --user --scope -p Delegate=yes fcvm ...`;
  }
}

async function v1Host(mounts: CgroupMount[], own: Map<string, string>, uid: number): Promise<CgroupHost | string> {
  const parentOf = (controller: string) => {
    const m = mounts.find((x) => x.version === 1 && x.controllers.includes(controller));
    const path = m && ownPath(own, controller);
    return m && path !== undefined ? join(cgroupDir(m, path), CGROUP_SUBTREE) : undefined;
  };
  const memory = parentOf('memory');
  const pids = parentOf('pids');
  if (!memory || !pids) return 'no cgroup v1 hierarchy has the memory and pids controllers';
  if (uid !== 0) {
    for (const p of [memory, pids]) if (!(await writableDir(join(p, '..')))) return `cgroup v1 (${join(p, '..')}) is not delegated to you`;
  }
  // No cpu controller on v1: the VMs' common parent would compete with every process in
  // the host's root cgroup as one task, so all VMs together would get one process's
  // CPU share under contention. A CPU weight is cgroup v2's (there the parent is a slice
  // among slices).
  return cgroupV1Host({ memory, pids, cpu: undefined });
}

/**
 * The directories VM cgroups may sit in on this host, as they are now (nothing is
 * made): root's `fcvm/` of cgroup v2 and of each v1 hierarchy under this process's
 * own cgroup, and this process's own v2 cgroup (a user's delegated one). For the reaper.
 */
export function existingCgroupParentsSync(): string[] {
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  const mounts = parseCgroupMounts(read('/proc/self/mountinfo'));
  const own = parseProcCgroup(read('/proc/self/cgroup'));
  const out: string[] = [];
  for (const m of mounts) {
    if (m.version === 2) {
      out.push(join(m.dir, CGROUP_SUBTREE));
      const path = own.get('');
      if (path !== undefined) out.push(cgroupDir(m, path));
    } else if (m.controllers.some((c) => ['memory', 'pids', 'cpu'].includes(c))) {
      const path = ownPath(own, m.controllers[0]!);
      if (path !== undefined) out.push(join(cgroupDir(m, path), CGROUP_SUBTREE));
    }
  }
  return [...new Set(out)];
}
