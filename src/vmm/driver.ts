import type { Transport } from '../protocol/transport.js';
import type { CleanupStack } from '../util/cleanup-stack.js';
import type { JailSpec } from '../jail/spec.js';

/**
 * The VMM driver interface, shared by QEMU (microvm) and Firecracker.
 *
 * A driver turns a VmSpec into a RunningVm. Callers ask `capabilities` what a driver
 * can do instead of checking which driver it is. Lifecycle is in the types: `boot`
 * gives a RunningVm, whose `stop()` gives a StoppedVm.
 *
 *   boot        spec -> RunningVm (process started, control channel up)
 *   pause/resume  vCPUs stopped / continued (RunningVm)
 *   snapshot    paused VM -> memory copy + device state + frozen disks (capability "snapshot")
 *   restore     snapshot -> RunningVm (capability "snapshot"; userfaultfd page
 *               serving is capability "uffd", Firecracker only)
 *   guest channel   a byte Transport to the guest agent: virtio-serial on QEMU,
 *               hybrid vsock (Unix socket + "CONNECT port") on Firecracker
 *   disks, NICs described in the spec: raw or qcow2 disks, TAP NICs
 */
export type HypervisorName = 'qemu' | 'firecracker';
export type Accel = 'kvm' | 'tcg';

/**
 * The named byte channels between host and guest. Each is its own link (a virtio-serial
 * port on QEMU, a vsock port on Firecracker), so traffic on one never waits behind
 * another's: the agent's control session, and the volumes' FUSE traffic.
 */
export const GUEST_CHANNELS = ['agent', 'fuse'] as const;
export type GuestChannel = (typeof GUEST_CHANNELS)[number];

export interface DriverCapabilities {
  /** Can pause a VM and write memory + device state for clones. */
  snapshot: boolean;
  /** Restores can take guest memory from a userfaultfd page server. */
  uffd: boolean;
  /** Software emulation is possible when KVM is not (QEMU TCG). */
  tcg: boolean;
  /** Disk formats the driver opens directly. */
  diskFormats: readonly ('raw' | 'qcow2')[];
  /** The guest channel transport. */
  guestChannel: 'virtio-serial' | 'vsock';
  /** NIC kinds the driver supports; Firecracker only takes TAP devices. */
  nicKinds: readonly NicSpec['kind'][];
}

export interface DiskSpec {
  /** Short id; also the virtio-blk serial the guest sees (max 20 chars). */
  id: string;
  path: string;
  format: 'raw' | 'qcow2';
  readOnly: boolean;
  /** The image a qcow2 overlay is backed by, so a frozen copy can be made self-contained. */
  backing?: { path: string; format: 'raw' | 'qcow2' };
}

/** A guest NIC: a TAP device (bridged), or the VMM's own user-mode network (rootless, QEMU only). */
export type NicSpec =
  | { kind: 'tap'; id: string; tap: string; mac: string }
  | { kind: 'user'; id: string; mac: string; hostForwards: HostForward[] };

/** A host port the VMM itself listens on and forwards to a guest port. */
export interface HostForward {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  guestPort: number;
}

export interface VmSpec {
  name: string;
  /**
   * The VMM's own directory: its sockets, console log and per-VM disks, and nothing of
   * the supervisor's (a jailed VMM owns it and may write there). Removed by the caller.
   */
  runDir: string;
  kernel: string;
  /** Absent for a restore: the guest booted long ago, and the VMM would only hold a copy. */
  initrd?: string;
  cmdline: string;
  vcpus: number;
  memoryMiB: number;
  accel: Accel;
  /** The first disk is the root disk (/dev/vda). */
  disks: DiskSpec[];
  nics: NicSpec[];
  /** Network namespace the VMM runs in (where its TAP devices are). */
  netns?: string;
  /**
   * Size of the emulator's translation cache, MiB (TCG only; its default is 1 GiB,
   * grown as code runs). Clones, which mostly re-run warm code, get a small one.
   */
  tcgCacheMiB?: number;
  /**
   * Guest RAM as a file the VMM maps. `shared`: the guest writes the file itself, so a
   * snapshot can take memory from it (a cold VM, in tmpfs). Not shared: a private
   * copy-on-write mapping, so clones of one snapshot share its page cache.
   */
  memory: {
    path: string;
    shared: boolean;
    /**
     * For a private mapping: an fd of a sealed memfd with the same bytes as `path` (from a
     * memory server), for a driver that can only map a file it opened read-write; the
     * seal keeps a jailed VMM from writing what other clones read.
     */
    sealedFd?: number;
  };
  /** The VMM's jail; absent with --no-jail. */
  jail?: JailSpec;
}

/** What a snapshot holds on disk, as the driver wrote it. */
export interface SnapshotFiles {
  /** Device state (vCPUs, devices), without guest RAM. */
  state: string;
  /** An immutable copy of guest RAM. */
  memory: string;
  /** A frozen, self-contained copy of each writable disk, by disk id. */
  disks: { id: string; path: string }[];
}

/** A snapshot being taken: the files exist once `complete` resolves. */
export interface SnapshotInProgress {
  files: SnapshotFiles;
  /** Work that may run after the source resumed (e.g. compacting frozen disks). */
  complete: () => Promise<void>;
}

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningVm {
  readonly pid: number;
  readonly consoleLog: string;
  /** Resolves when the VMM process exits, for whatever reason. */
  readonly exited: Promise<VmExit>;
  /** Opens a byte channel to the guest (its agent end listens on it). */
  connectChannel(name: GuestChannel): Promise<Transport>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /**
   * Snapshots the paused VM into `dir`: device state, a copy of RAM, and writable disks
   * frozen (the VM goes on writing a new layer). Call `resume` then `complete`.
   */
  snapshot(dir: string): Promise<SnapshotInProgress>;
  /** Ends the VM at once (the guest's disks are throwaway) and waits for the process. */
  stop(): Promise<StoppedVm>;
}

export interface StoppedVm {
  readonly exit: VmExit;
}

export interface VmmDriver {
  readonly name: HypervisorName;
  readonly capabilities: DriverCapabilities;
  /** Why the driver cannot run here, or undefined if it can. */
  unavailableReason(): Promise<string | undefined>;
  /** Starts the VMM; every acquisition registers its undo on `cleanup`. */
  boot(spec: VmSpec, cleanup: CleanupStack): Promise<RunningVm>;
  /**
   * Starts a VM from a snapshot's device state and runs it. `spec` must describe the
   * same machine as the snapshot's source, with `memory` set to the snapshot's RAM file.
   */
  restore(spec: VmSpec, stateFile: string, cleanup: CleanupStack): Promise<RunningVm>;
}
