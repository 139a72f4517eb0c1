import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CgroupHost, CgroupLimits, VmCgroup } from './cgroup.js';
import { killAndRemove, writeControl } from './cgroup-fs.js';

/** The controllers a VM cgroup needs, and the one it uses where present. */
export const V2_REQUIRED = ['memory', 'pids'] as const;

const controllers = async (dir: string) => (await readFile(join(dir, 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean);

/**
 * cgroup v2: a VM's cgroup is `parent/NAME`, where `parent` hands the memory, pids and
 * (if available) cpu controllers down to its children. cgroup.kill ends everything in it
 * at once on removal.
 */
export function cgroupV2Host(parent: string, hasCpu: boolean): CgroupHost {
  const open = (name: string): VmCgroup => {
    const dir = join(parent, name);
    return {
      version: 2,
      name,
      dirs: [dir],
      join: (pid) => writeControl(dir, 'cgroup.procs', pid),
      remove: () => killAndRemove([dir], (d) => writeControl(d, 'cgroup.kill', 1).then(() => false, () => false)),
    };
  };
  return {
    version: 2,
    parents: [parent],
    open,
    create: async (name: string, limits: CgroupLimits) => {
      const cg = open(name);
      const dir = cg.dirs[0]!;
      try {
        await mkdir(dir, { mode: 0o755 });
        await writeControl(dir, 'memory.max', limits.memoryBytes);
        // An OOM kill takes the whole VMM, never one of its threads' allocations half-way.
        await writeControl(dir, 'memory.oom.group', 1).catch(() => {});
        await writeControl(dir, 'pids.max', limits.pids);
        if (hasCpu) await writeControl(dir, 'cpu.weight', limits.cpuWeight);
        return cg;
      } catch (e) {
        await cg.remove().catch(() => {});
        throw e;
      }
    },
  };
}

/**
 * Makes `dir` hand the controllers down to its children (each missing one added to its
 * cgroup.subtree_control, after its parent's, up from `top`). Returns whether cpu is
 * handed down too; throws if memory or pids cannot be.
 */
export async function delegateControllers(top: string, dir: string): Promise<boolean> {
  const chain: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    chain.unshift(d);
    if (d === top || d === '/') break;
  }
  let cpu = true;
  for (const d of chain) {
    const available = await controllers(d);
    const enabled = (await readFile(join(d, 'cgroup.subtree_control'), 'utf8').catch(() => '')).trim().split(/\s+/);
    for (const c of [...V2_REQUIRED, 'cpu']) {
      if (enabled.includes(c)) continue;
      if (c === 'cpu') {
        // The CPU weight is worth having, not worth failing for (realtime tasks can block it).
        if (!available.includes(c) || !(await writeControl(d, 'cgroup.subtree_control', '+cpu').then(() => true, () => false))) cpu = false;
        continue;
      }
      if (!available.includes(c)) throw new Error(`cgroup ${d} does not have the ${c} controller`);
      await writeControl(d, 'cgroup.subtree_control', `+${c}`);
    }
  }
  return cpu;
}
