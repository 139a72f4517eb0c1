import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import { reapLeftovers } from './reaper.js';
import { isOwnerAlive, StateStore } from './store.js';
import type { VmState } from './vm-state.js';

/** One row of `fcvm ls`. */
export interface VmListing {
  name: string;
  pid: number;
  vmmPid: number | undefined;
  status: VmState['status'];
  image: string;
  hypervisor: VmState['hypervisor'];
  accel: VmState['accel'];
  /** QEMU's query-kvm at boot: {enabled, present}. */
  kvm?: VmState['kvm'];
  vcpus: number;
  memoryMiB: number;
  createdAt: string;
  uptimeSeconds: number;
  exitCode: number | undefined;
  transitions: VmState['transitions'];
  network: VmState['network'];
  clone: VmState['clone'];
  /** The startup snapshot a `podman run` was restored from. */
  startupSnapshot?: string;
  /** The VMM's jail: its uid and gid, its root (as the host reaches it), namespaces and cgroup. */
  jail: (NonNullable<VmState['jail']> & { root: string | undefined }) | undefined;
  labels: Record<string, string>;
  volumes: VmState['volumes'];
  /** The command given to the run, replacing the image's CMD; absent where the image's runs. */
  command?: string[];
}

/** Running VMs, after reaping what dead supervisors left. */
export async function listVms(layout: Layout, log: Logger, pid?: number): Promise<VmListing[]> {
  const store = new StateStore(layout.vmState);
  await reapLeftovers(layout, log);
  const out: VmListing[] = [];
  for (const e of await store.list()) {
    if (!e.ok || !isOwnerAlive(e.state)) continue;
    const s = e.state;
    if (pid !== undefined && s.pid !== pid && s.vmmPid !== pid) continue;
    out.push(toListing(s));
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** A kept VM that ended (src/state/ended.ts) as a row: its uptime stops at its end, and no process is its own any more (PIDs 0, as podman's). Pure. */
export function endedListing(s: VmState): VmListing {
  const end = Date.parse(s.transitions.at(-1)?.at ?? s.createdAt);
  return { ...toListing(s, end), pid: 0, vmmPid: undefined };
}

/** A state file as a row of `fcvm ls`. Pure apart from the clock. */
export function toListing(s: VmState, now = Date.now()): VmListing {
  return {
    name: s.name,
    pid: s.pid,
    vmmPid: s.vmmPid,
    status: s.status,
    image: s.image,
    hypervisor: s.hypervisor,
    accel: s.accel,
    ...(s.kvm ? { kvm: s.kvm } : {}),
    vcpus: s.vcpus,
    memoryMiB: s.memoryMiB,
    createdAt: s.createdAt,
    uptimeSeconds: Math.max(0, Math.round((now - Date.parse(s.createdAt)) / 1000)),
    exitCode: s.exitCode,
    transitions: s.transitions,
    network: s.network,
    clone: s.clone,
    ...(s.startupSnapshot ? { startupSnapshot: s.startupSnapshot } : {}),
    jail: s.jail && { ...s.jail, root: jailRoot(s) },
    labels: s.labels ?? {},
    volumes: s.volumes,
    ...(s.plan?.command ? { command: s.plan.command } : {}),
  };
}

/** Where the host reaches the VMM's root: its own tmpfs, through /proc, once it runs in a mount namespace of its own. */
function jailRoot(s: VmState): string | undefined {
  if (!s.jail || s.jail.mode === 'off' || !s.jail.namespaces?.includes('mnt')) return s.vmmPid ? '/' : undefined;
  return s.vmmPid ? `/proc/${s.vmmPid}/root` : undefined;
}
