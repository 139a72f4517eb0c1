import type { Accel } from '../vmm/driver.js';

/** A VM's resource limits, as its cgroup enforces them. */
export interface CgroupLimits {
  /** Memory, in bytes: guest RAM plus the VMM's own. Page cache is reclaimed first; past it, the OOM killer acts inside the cgroup. */
  memoryBytes: number;
  /** Tasks: the VMM's processes and threads together. */
  pids: number;
  /** Relative CPU share in cgroup v2 units (1 to 10000, 100 is a default process's). */
  cpuWeight: number;
}

/** One VM's cgroup: a directory under cgroup v2, or one per controller hierarchy under v1. */
export interface VmCgroup {
  readonly version: 1 | 2;
  readonly name: string;
  readonly dirs: readonly string[];
  /** Moves process `pid` into the cgroup; what it starts afterwards is in it too. */
  join(pid: number): Promise<void>;
  /** Kills whatever still runs in the cgroup and removes it. */
  remove(): Promise<void>;
}

/** Where this host lets fcvm make VM cgroups, behind one narrow interface for v1 and v2. */
export interface CgroupHost {
  readonly version: 1 | 2;
  /** The directories VM cgroups are made in (one per hierarchy under v1). */
  readonly parents: readonly string[];
  /** Creates the cgroup `name` (the VM's id) with `limits`. */
  create(name: string, limits: CgroupLimits): Promise<VmCgroup>;
  /** The cgroup `name` as it is now, for removal (the reaper's view). */
  open(name: string): VmCgroup;
}

/**
 * The VMM's own memory beyond guest RAM, measured with `fcvm podman run` of a busybox
 * container plus an exec (QEMU 7.2, microvm): about 45 MiB of heap, stacks and mapped
 * libraries, plus, under TCG, the translation cache it fills (it grows to its size limit
 * on a busy guest: 1 GiB by default). The slack covers page cache charged to the VM.
 */
export const VMM_OVERHEAD_MIB = 128;
const TCG_DEFAULT_CACHE_MIB = 1024;
/** QEMU's threads beyond its vCPUs: main loop, RCU, and its I/O pool (capped at QEMU_IO_THREADS). */
export const QEMU_IO_THREADS = 16;
const SPARE_TASKS = 32;

/** The limits for a VM of this size. Pure. */
export function vmLimits(vm: { vcpus: number; memoryMiB: number; accel: Accel; tcgCacheMiB?: number | undefined }): CgroupLimits {
  const tcg = vm.accel === 'tcg' ? (vm.tcgCacheMiB ?? TCG_DEFAULT_CACHE_MIB) : 0;
  return {
    memoryBytes: (vm.memoryMiB + tcg + VMM_OVERHEAD_MIB) * 2 ** 20,
    pids: vm.vcpus + QEMU_IO_THREADS + SPARE_TASKS,
    cpuWeight: Math.min(10_000, Math.max(1, 100 * vm.vcpus)),
  };
}

/** cgroup v1's cpu.shares for a v2 weight (1024 is v1's default, 100 is v2's). Pure. */
export const sharesFor = (weight: number) => Math.max(2, Math.round((weight * 1024) / 100));
