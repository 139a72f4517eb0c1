import { join } from 'node:path';

/** A cgroup filesystem mount: v2 (the unified hierarchy) or a v1 hierarchy with its controllers. */
export interface CgroupMount {
  version: 1 | 2;
  /** Where it is mounted. */
  dir: string;
  /** The hierarchy path the mount shows at `dir` ("/" unless inside a cgroup namespace). */
  root: string;
  /** v1: the controllers bound to the hierarchy (name=systemd has none). */
  controllers: string[];
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup mounts in /proc/self/mountinfo text. Pure. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const [fstype, , superOpts = ''] = post.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const known = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'net_cls', 'blkio', 'perf_event', 'net_prio', 'hugetlb', 'pids', 'rdma', 'misc'];
    out.push({
      version: fstype === 'cgroup2' ? 2 : 1,
      dir: unescape(f[4] ?? ''),
      root: unescape(f[3] ?? '/'),
      controllers: fstype === 'cgroup' ? superOpts.split(',').filter((o) => known.includes(o)) : [],
    });
  }
  return out;
}

/** This process's cgroup per hierarchy, from /proc/self/cgroup text: controller list ("" for v2) to path. Pure. */
export function parseProcCgroup(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    const j = line.indexOf(':', i + 1);
    if (i < 0 || j < 0) continue;
    m.set(line.slice(i + 1, j), line.slice(j + 1));
  }
  return m;
}

/** The directory of cgroup `path` (as /proc/self/cgroup names it) under `mount`. Pure. */
export function cgroupDir(mount: CgroupMount, path: string): string {
  const rel = mount.root !== '/' && (path === mount.root || path.startsWith(`${mount.root}/`)) ? path.slice(mount.root.length) : path;
  return join(mount.dir, rel);
}

/** The path of this process's cgroup in the v1 hierarchy holding `controller`, or in v2 (""). Pure. */
export function ownPath(procCgroup: Map<string, string>, controller: string): string | undefined {
  if (controller === '') return procCgroup.get('');
  for (const [list, path] of procCgroup) if (list.split(',').includes(controller)) return path;
  return undefined;
}
