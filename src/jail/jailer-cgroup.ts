import { dirname, relative } from 'node:path';
import { sharesFor, type CgroupLimits } from './cgroup.js';
import type { CgroupMount } from './cgroup-mounts.js';

/** A VM cgroup as Firecracker's jailer takes it: `--cgroup-version`, `--parent-cgroup`, `--cgroup FILE=VALUE`. */
export interface JailerCgroup {
  version: 1 | 2;
  /** The VM cgroup's parent, relative to each hierarchy's mount (the jailer adds the VM id). */
  parent: string;
  /** The limit files and values, so the jailer writes them as it joins (the same fcvm set). */
  values: string[];
}

/**
 * The jailer's view of the VM cgroup fcvm made (`dirs`, one per hierarchy, each ending in
 * the VM id): the jailer makes `<mount>/<parent>/<id>`, which already exists, writes the
 * limits again and puts Firecracker in it before it drops privileges. v1 hierarchies must
 * agree on the parent, since the jailer takes one. Pure.
 */
export function jailerCgroup(version: 1 | 2, dirs: readonly string[], limits: CgroupLimits, mounts: readonly CgroupMount[]): JailerCgroup {
  const parents = dirs.map((d) => {
    const m = mounts.filter((x) => x.version === version && (d === x.dir || d.startsWith(`${x.dir}/`))).sort((a, b) => b.dir.length - a.dir.length)[0];
    if (!m) throw new Error(`${d} is on no cgroup v${version} mount`);
    return { parent: relative(m.dir, dirname(d)), controllers: m.controllers };
  });
  const parent = parents[0]?.parent;
  if (parent === undefined || parents.some((p) => p.parent !== parent)) {
    throw new Error(`the VM cgroup's parents differ between hierarchies (${parents.map((p) => p.parent).join(', ')}); Firecracker's jailer takes one`);
  }
  const has = (c: string) => version === 2 || parents.some((p) => p.controllers.includes(c));
  const values = version === 2
    ? [`memory.max=${limits.memoryBytes}`, `pids.max=${limits.pids}`, `cpu.weight=${limits.cpuWeight}`]
    : [`memory.limit_in_bytes=${limits.memoryBytes}`, `pids.max=${limits.pids}`, ...(has('cpu') ? [`cpu.shares=${sharesFor(limits.cpuWeight)}`] : [])];
  return { version, parent, values };
}
