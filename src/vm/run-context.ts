import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { consoleTail } from '../vmm/console.js';
import type { VmExit } from '../vmm/driver.js';
import type { FcvmError } from '../errors/fcvm-error.js';
import type { Writable } from 'node:stream';
import { errors } from '../errors/catalogue.js';
import { type ImagePlan } from '../images/host-image.js';
import type { RunOptions } from '../options/run-options.js';
import type { PullOptions } from '../options/podman-run-flags.js';
import type { RotatingLog } from '../logs/vm-log.js';
import type { LocalStdin, LocalStdout } from '../exec/terminal.js';
import type { TextSink } from './output.js';
import { type ContainerRun, type RestoredResult } from '../protocol/api.js';
import type { SnapshotMeta } from '../snapshot/store.js';
import type { ServerLink } from '../snapshot/serve-client.js';
import { Connection } from '../protocol/connection.js';
import type { Layout } from '../setup/layout.js';
import { type Manifest } from '../setup/manifest.js';
import { StateStore } from '../state/store.js';
import { type VmState } from '../state/vm-state.js';
import { CleanupStack } from '../util/cleanup-stack.js';
import type { Logger } from '../util/log.js';
import type { VolumeServer } from '../fuse/volume-server.js';
import type { Accel, NicSpec, RunningVm, VmmDriver, VmSpec } from '../vmm/driver.js';

export interface RunEnv {
  layout: Layout;
  log: Logger;
  /** Where container output and progress go (the user's stderr, or a detached supervisor's log). */
  out: TextSink;
  /** Aborted with the signal name as reason on SIGINT/SIGTERM. */
  interrupt: AbortSignal;
  /** Winds the VM down as a signal would (a clone whose memory server went away). */
  stop?: (reason: NodeJS.Signals) => void;
  /** The user's terminal or pipes, for a run attached with -i or -t. */
  attach?: { stdin: LocalStdin; stdout: LocalStdout; stderr: Writable };
  /** A detached supervisor (-d): called once its log is open, to send its output there from now on. */
  detached?: (log: RotatingLog) => void;
  /** Keep the VM's log and last state after it ends, unless --rm (`podman run`'s, as podman keeps an exited container). */
  keepEnded?: boolean;
}

/** What the boot steps fill in, in order. */
export interface Ctx {
  opts: RunOptions;
  env: RunEnv;
  cleanup: CleanupStack;
  store: StateStore;
  manifest: Manifest;
  driver: VmmDriver;
  image: ImagePlan;
  accel: Accel;
  state: VmState;
  nics: NicSpec[] | undefined;
  netns: string | undefined;
  /** Rootless with a TAP: the process whose user and network namespaces the VMM joins. */
  userNamespaceOf: number | undefined;
  guestNet: GuestNet | undefined;
  configured: Promise<unknown>;
  spec: VmSpec;
  vm: RunningVm;
  conn: Connection;
  /** The agent's hello; awaited by the agent step (cold) or with vm.restored (clone). */
  hello: Promise<void>;
  /** Set for a clone: the snapshot it restores. */
  clone: CloneSource | undefined;
  /** Set once a clone's agent reported its container. */
  restored: RestoredResult | undefined;
  /** The VM's own log (see logs/vm-log.ts). */
  vmLog: RotatingLog | undefined;
  /** The host side of the VM's volumes, when it has any. */
  volumes?: VolumeServer;
  /** A pooled clone's run directory, made before its name was claimed. */
  reservedRunDir?: string;
  /** Settles with the container's exit code once it ended and its output is in (`fcvm wait`). */
  containerExit: { promise: Promise<number>; resolve: (code: number) => void };
  /** A clone's agent events that came before the supervision listened, in order. */
  earlyEvents: { events: [string, unknown][]; stop: () => void } | undefined;
  /** `fcvm stop` asked (not a signal to this process): the container's own code is kept, 137 if it was killed, as podman stop's. */
  stopCommand?: boolean;
}

/** The snapshot a clone is made from, and the memory server it came through. */
export interface CloneSource {
  tag: string;
  dir: string;
  meta: SnapshotMeta;
  servePid: number | undefined;
  /** The memory server the clone is attached to, if any. */
  server: ServerLink | undefined;
  /** A startup snapshot of `podman run`: its guest has no container yet, and runs this run's. */
  startup?: boolean;
  /** The memory server's sealed copy of guest RAM, opened here (see MemorySource's sealedFd). */
  sealedFd: number | undefined;
}

/** The guest's address, gateway and resolvers, handed to the agent in vm.configure. */
export interface GuestNet {
  address: string;
  prefix: number;
  gateway: string;
  dns: string[];
}

/** The VMM's own directory inside a VM's run directory (the supervisor's sockets stay outside it). */
export const vmmDir = (runDir: string) => join(runDir, 'vmm');

/** The virtio-blk serials of the root and image disks. */
export const IMAGE_DISK = 'image';
export const ROOT_DISK = 'root';

/** Rejects with an INTERRUPTED error when `signal` aborts (its reason is the signal's name). */
export function interrupted(signal: AbortSignal): Promise<never> {
  const p = new Promise<never>((_, reject) => {
    const fail = () => reject(errors.interrupted(String(signal.reason), exitCodeForSignal(String(signal.reason))));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
  p.catch(() => {});
  return p;
}

/** 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as podman exits. */
export function exitCodeForSignal(sig: string): number {
  return 128 + (constants.signals[sig as NodeJS.Signals] ?? 0);
}

/** How a VMM process ended: its signal, or "code N". */
export function describeExit(x: VmExit): string {
  return x.signal ?? `code ${x.code}`;
}

/** The error for a VM that stopped on its own, with the guest console's key lines. */
export async function vmStoppedError(c: Ctx, how: string, exit?: VmExit): Promise<FcvmError> {
  if (exit?.noSpaceFor && exit.signal === 'SIGBUS') return errors.diskFull(`running VM "${c.opts.name}", whose RAM file ${exit.noSpaceFor} could not grow`, dirname(exit.noSpaceFor));
  if (exit?.noSpaceFor) return errors.diskFull(`running VM "${c.opts.name}", whose disk ${exit.noSpaceFor} had to grow`, dirname(exit.noSpaceFor));
  return errors.vmmExited(how, await consoleTail(c.vm.consoleLog));
}

/**
 * How the agent gets the image; a pull carries the registry's TLS settings, CA files and
 * credentials, an archive the user's name for it (a nested-profile guest tags it so).
 */
export function imageSource(image: ImagePlan, pull?: PullOptions): ContainerRun['image'] {
  if (image.kind === 'archive') return { kind: 'archive', diskSerial: IMAGE_DISK, id: image.id, name: image.ref };
  return {
    kind: 'pull',
    ref: image.ref,
    ...(pull?.tlsVerify === false ? { tlsVerify: false } : {}),
    ...(pull?.auth ? { auth: pull.auth } : {}),
    ...(pull?.certs?.length ? { certs: pull.certs } : {}),
  };
}
