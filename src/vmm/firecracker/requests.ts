import { atLeast, formatVersion, SINCE, type Version } from './version.js';

/**
 * The Firecracker API requests fcvm sends, as pure values built from a machine
 * description and the binary's version: only fields that version knows, optional ones
 * only when set. Tested as values, and against schemas written from the swagger.
 */
export interface ApiRequest {
  method: 'GET' | 'PUT' | 'PATCH';
  path: string;
  body?: Record<string, unknown>;
}

/** A Firecracker machine. Paths are relative to the VMM's working directory (or jail). */
export interface FcMachine {
  vcpus: number;
  memoryMiB: number;
  kernel: string;
  initrd?: string;
  bootArgs: string;
  /** In guest order: the first is /dev/vda. */
  drives: { id: string; path: string; readOnly: boolean }[];
  nics: { id: string; tap: string; mac: string }[];
  vsock: { cid: number; udsPath: string };
}

/** Memory of a restored VM: the snapshot's file mapped privately, or a userfaultfd page server. */
export type MemoryBackend = { kind: 'file'; path: string } | { kind: 'uffd'; socket: string };

/** A field a request needs that this Firecracker does not know. */
export class UnsupportedByVersion extends Error {
  constructor(
    readonly what: string,
    readonly since: Version,
    readonly have: Version,
  ) {
    super(`${what} needs Firecracker ${formatVersion(since)} or later, this one is ${formatVersion(have)}`);
  }
}

/** The requests that configure and start a cold VM, in order. */
export function bootRequests(m: FcMachine, v: Version): ApiRequest[] {
  const reqs: ApiRequest[] = [
    { method: 'PUT', path: '/machine-config', body: { vcpu_count: m.vcpus, mem_size_mib: m.memoryMiB, smt: false } },
    { method: 'PUT', path: '/boot-source', body: { kernel_image_path: m.kernel, boot_args: m.bootArgs, ...(m.initrd ? { initrd_path: m.initrd } : {}) } },
  ];
  // The initrd mounts the root disk itself: no drive is Firecracker's root device.
  for (const d of m.drives) {
    reqs.push({ method: 'PUT', path: `/drives/${encodeURIComponent(d.id)}`, body: { drive_id: d.id, path_on_host: d.path, is_root_device: false, is_read_only: d.readOnly } });
  }
  for (const n of m.nics) {
    reqs.push({ method: 'PUT', path: `/network-interfaces/${encodeURIComponent(n.id)}`, body: { iface_id: n.id, host_dev_name: n.tap, guest_mac: n.mac } });
  }
  reqs.push({ method: 'PUT', path: '/vsock', body: { guest_cid: m.vsock.cid, uds_path: m.vsock.udsPath } });
  // virtio-rng, so the guest's CRNG is seeded at once (older Firecrackers have none).
  if (atLeast(v, SINCE.entropyDevice)) reqs.push({ method: 'PUT', path: '/entropy', body: {} });
  reqs.push({ method: 'PUT', path: '/actions', body: { action_type: 'InstanceStart' } });
  return reqs;
}

export const pauseRequest: ApiRequest = { method: 'PATCH', path: '/vm', body: { state: 'Paused' } };
export const resumeRequest: ApiRequest = { method: 'PATCH', path: '/vm', body: { state: 'Resumed' } };
export const versionRequest: ApiRequest = { method: 'GET', path: '/version' };

/** A full snapshot of a paused VM: device state to `statePath`, all of guest memory to `memPath`. */
export function snapshotCreateRequest(statePath: string, memPath: string): ApiRequest {
  return { method: 'PUT', path: '/snapshot/create', body: { snapshot_type: 'Full', snapshot_path: statePath, mem_file_path: memPath } };
}

export interface LoadOptions {
  statePath: string;
  memory: MemoryBackend;
  resume: boolean;
  /** TAPs that differ from the snapshot's (by interface id). */
  networkOverrides?: { id: string; tap: string }[];
  /** A vsock socket path that differs from the snapshot's. */
  vsockPath?: string;
}

/** Loads a snapshot into a fresh Firecracker; throws UnsupportedByVersion for overrides it cannot do. */
export function snapshotLoadRequest(o: LoadOptions, v: Version): ApiRequest {
  const body: Record<string, unknown> = {
    snapshot_path: o.statePath,
    mem_backend: o.memory.kind === 'file' ? { backend_type: 'File', backend_path: o.memory.path } : { backend_type: 'Uffd', backend_path: o.memory.socket },
    resume_vm: o.resume,
  };
  if (o.networkOverrides && o.networkOverrides.length > 0) {
    if (!atLeast(v, SINCE.networkOverrides)) throw new UnsupportedByVersion('a clone with its own TAP device (network_overrides)', SINCE.networkOverrides, v);
    body.network_overrides = o.networkOverrides.map((n) => ({ iface_id: n.id, host_dev_name: n.tap }));
  }
  if (o.vsockPath !== undefined) {
    if (!atLeast(v, SINCE.vsockOverride)) throw new UnsupportedByVersion('a clone with its own vsock socket (vsock_override)', SINCE.vsockOverride, v);
    body.vsock_override = { uds_path: o.vsockPath };
  }
  return { method: 'PUT', path: '/snapshot/load', body };
}
