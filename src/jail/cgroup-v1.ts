import { access, constants, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sharesFor, type CgroupHost, type CgroupLimits, type VmCgroup } from './cgroup.js';
import { killAndRemove, writeControl } from './cgroup-fs.js';

/** The v1 hierarchies a VM cgroup uses: each controller's parent directory. */
export interface V1Parents {
  memory: string;
  pids: string;
  /** Absent where no hierarchy carries the cpu controller. */
  cpu: string | undefined;
}

/**
 * cgroup v1 (a "legacy" or "hybrid" host): a VM's cgroup is a directory of the same name
 * in the memory, pids and cpu hierarchies, under the cgroup fcvm itself runs in (plus
 * "fcvm/"), so whatever limits the host set on fcvm go on covering its VMs. v1 has no rule
 * against processes in inner cgroups, so nesting under a busy cgroup works.
 */
export function cgroupV1Host(parents: V1Parents): CgroupHost {
  const all = [parents.memory, parents.pids, ...(parents.cpu ? [parents.cpu] : [])];
  const open = (name: string): VmCgroup => {
    const dirs = all.map((p) => join(p, name));
    return {
      version: 1,
      name,
      dirs,
      join: async (pid) => {
        for (const d of dirs) await writeControl(d, 'cgroup.procs', pid);
      },
      remove: () => killAndRemove(dirs),
    };
  };
  return {
    version: 1,
    parents: all,
    open,
    create: async (name: string, limits: CgroupLimits) => {
      const cg = open(name);
      try {
        for (const d of cg.dirs) await mkdir(d, { recursive: true, mode: 0o755 });
        const [memory, pids, cpu] = cg.dirs;
        await writeControl(memory!, 'memory.limit_in_bytes', limits.memoryBytes);
        await writeControl(pids!, 'pids.max', limits.pids);
        if (cpu) await writeControl(cpu, 'cpu.shares', sharesFor(limits.cpuWeight));
        return cg;
      } catch (e) {
        await cg.remove().catch(() => {});
        throw e;
      }
    },
  };
}

/** True if this process may make cgroups in `dir` (root may; others only in a delegated one). */
export async function writableDir(dir: string): Promise<boolean> {
  return access(dir, constants.W_OK).then(() => true, () => false);
}
