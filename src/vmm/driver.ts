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
 *   snapshot    paused VM -> device state + a copy of RAM + frozen disks (capability
 *               "snapshot"). Who writes the RAM copy is the driver's business: QEMU's
 *               RAM is a shared file fcvm copies, Firecracker writes it itself.
 *   restore     snapshot -> RunningVm, RAM from the snapshot's file mapped privately,
 *               or from a userfaultfd page server (capability "restoreMemory")
 *   guest channel   a byte Transport to the guest agent: virtio-serial on QEMU,
 *               hybrid vsock (Unix socket + "CONNECT port") on Firecracker
 *   disks, NICs described in the spec: files used as they are, or copy-on-write
 *               children of a base the driver makes (a qcow2 overlay, or a reflink)
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

/** The guest vsock port of each channel, where the guest listens under Firecracker. */
export const VSOCK_PORTS: Readonly<Record<GuestChannel, number>> = { agent: 10240, fuse: 10241 };

export interface DriverCapabilities {
  /** Can pause a VM and write memory + device state for clones. */
  snapshot: boolean;
  /** A VM restored from a snapshot can itself be snapshotted. */
  snapshotRestored: boolean;
  /**
   * Taking a snapshot drops the guest channels' open connections in the source too
   * (Firecracker resets the vsock transport): the host connects again and resyncs.
   */
  snapshotResetsChannels: boolean;
  /** Where a restore can take guest memory from. */
  restoreMemory: readonly MemorySource['kind'][];
  /** Software emulation is possible when KVM is not (QEMU TCG). */
  tcg: boolean;
  /** The kernel image the VMM boots: Debian's bzImage (QEMU), or the ELF inside it (Firecracker). */
  kernel: 'bzImage' | 'vmlinux';
  /** Disk formats the driver opens directly. */
  diskFormats: readonly ('raw' | 'qcow2')[];
  /** The guest channel transport. */
  guestChannel: 'virtio-serial' | 'vsock';
  /** NIC kinds the driver supports; Firecracker only takes TAP devices. */
  nicKinds: readonly NicSpec['kind'][];
  /** The seccomp filter the VMM runs under (jailed, or always), as `fcvm ls --json` shows it. */
  seccomp: string;
  /** Gives an unprivileged user's VMM namespaces and a root of its own, in a user namespace, where the kernel allows. */
  userNamespaceJail: boolean;
}

export interface DiskSpec {
  /** Short id; the virtio-blk serial the guest sees where the VMM sets one (max 20 chars). */
  id: string;
  /** The file the VM uses, or with `cow` the base of its copy-on-write disk. */
  path: string;
  format: 'raw' | 'qcow2';
  readOnly: boolean;
  /**
   * A writable, throwaway disk: the driver gives the VM a copy-on-write child of `path`
   * (a qcow2 overlay on QEMU, a reflink on Firecracker) and never writes `path` itself.
   */
  cow?: boolean;
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
  /** The VM's id: names the host resources the driver makes (its RAM file), so a reaper can tell their owner. */
  id: string;
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
   * Rootless: the VMM joins the user and network namespaces of this process, which
   * hold its TAP device (net/rootless-tap.ts).
   */
  userNamespaceOf?: number;
  /**
   * A directory for the VM's copy-on-write raw disks, on a filesystem that can reflink
   * (the disk root). Created and removed by the caller.
   */
  diskDir?: string;
  /**
   * Size of the emulator's translation cache, MiB (TCG only; its default is 1 GiB,
   * grown as code runs). Clones, which mostly re-run warm code, get a small one.
   */
  tcgCacheMiB?: number;
  /**
   * The guest runs VMs itself (the nested kernel profile): the driver gives its vCPUs
   * virtualization extensions (QEMU: svm or vmx passed through under KVM, `-cpu max`
   * under TCG; Firecracker: the NV2 fork's EL2 on ARM64), or says why it cannot.
   */
  nested?: boolean;
  /** The VMM's jail; absent with --no-jail. */
  jail?: JailSpec;
}

/** Where a restored VM's memory comes from. */
export type MemorySource =
  /**
   * The snapshot's memory file, mapped privately: clones share its page cache. `sealedFd`:
   * a sealed memfd with the same bytes (from a memory server), for a driver that can only
   * map privately a file it opened read-write; the seal keeps a jailed VMM from writing
   * what other clones read. With `copy`, the VM gets a copy of it as its own RAM instead,
   * like a cold VM's (so it can be snapshotted itself), where the driver keeps RAM in a
   * file it copies (QEMU); the copy is the VMM's own (its jail's uid's).
   */
  | { kind: 'file'; path: string; sealedFd?: number; copy?: boolean }
  /**
   * A userfaultfd page server (fcvm snapshot serve). The driver picks a socket path
   * its VMM can reach and calls `serve`, which resolves once the server listens there
   * for a VMM running as `peerUid`.
   */
  | { kind: 'uffd'; serve: (socketPath: string, peerUid: number) => Promise<void> };

/** What a restore starts from. */
export interface RestoreSource {
  /** The device state the driver wrote at the snapshot. */
  state: string;
  memory: MemorySource;
  /** The snapshot's kernel stub, for a VMM that must load a kernel even when restoring. */
  kernel?: string;
}

/** What a snapshot holds on disk, as the driver wrote it (all inside the directory given). */
export interface SnapshotFiles {
  /** Device state (vCPUs, devices), without guest RAM. */
  state: string;
  /** An immutable copy of guest RAM. */
  memory: string;
  /** A frozen, self-contained copy of each writable disk, by disk id, with its format. */
  disks: { id: string; path: string; format: 'raw' | 'qcow2' }[];
  /** A kernel stub for restores, where the VMM needs one. */
  kernel?: string;
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
  /** Set when the driver ended the VM because a disk of it could not grow on the host (a full filesystem). */
  noSpaceFor?: string;
}

export interface RunningVm {
  readonly pid: number;
  /** What the VMM itself reports of KVM (QEMU's QMP query-kvm), where it can say. */
  readonly kvm?: { enabled: boolean; present: boolean };
  readonly consoleLog: string;
  /** Resolves when the VMM process exits, for whatever reason. */
  readonly exited: Promise<VmExit>;
  /** Opens a byte channel to the guest (its agent end listens on it). */
  connectChannel(name: GuestChannel): Promise<Transport>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /**
   * Bytes of guest RAM the host holds for this VM now, where the VMM drops the pages the
   * guest reports free (a balloon with free page reporting). Undefined where it does
   * not: then a snapshot does not ask the guest to trim (src/snapshot/trim.ts).
   */
  memoryHeld?(): Promise<number>;
  /**
   * Snapshots the paused VM into `dir`: device state, a copy of RAM, and writable disks
   * frozen (the VM goes on writing a new layer). Call `resume` then `complete`.
   */
  snapshot(dir: string): Promise<SnapshotInProgress>;
  /**
   * About how many bytes a snapshot of this VM writes now (its RAM copy, the largest
   * part), so that one that cannot fit is refused before the VM pauses.
   */
  snapshotBytes(): Promise<number>;
  /** Ends the VM at once (the guest's disks are throwaway) and waits for the process. */
  stop(): Promise<StoppedVm>;
  /**
   * Adds host forwards to a running VM's user-mode NIC `nic` (a pooled clone gets its
   * ports when it is handed out). Present where the driver has user-mode NICs.
   */
  addHostForwards?(nic: string, forwards: readonly HostForward[]): Promise<void>;
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
   * Starts a VM from a snapshot and runs it. `spec` must describe the same machine as
   * the snapshot's source; its writable disks are copy-on-write children of the frozen ones.
   */
  restore(spec: VmSpec, from: RestoreSource, cleanup: CleanupStack): Promise<RunningVm>;
}
