import { errors } from '../errors/catalogue.js';
import type { SnapshotMeta } from '../snapshot/store.js';
import { parsePid, splitCommand, validateName } from './parse.js';
import { cloneNetwork } from './pool-options.js';
import { runOptionsFromFlags, type NetworkMode, type RunFlags, type RunOptions } from './run-options.js';

/** Where a clone comes from: a running memory server, or a snapshot's files directly. */
export type CloneSourceChoice = { kind: 'serve'; pid: number } | { kind: 'snapshot'; tag: string };

/** The raw flags of `fcvm snapshot run`. */
export interface CloneRawFlags extends Pick<RunFlags, 'name' | 'network' | 'publish' | 'healthCheck' | 'healthCheckTimeout' | 'bootTimeout' | 'stopTimeout' | 'interactive' | 'tty' | 'detach' | 'map' | 'jail'> {
  pid?: string;
  snapshot?: string;
  exec?: string;
}

/** Validated flags of `fcvm snapshot run`; the rest of the run options come from the snapshot. */
export interface CloneFlags {
  source: CloneSourceChoice;
  /** Run this in the clone's container, print its output, and end the clone. */
  exec: string[] | undefined;
  raw: CloneRawFlags;
  /** Validated now, with a stand-in image, so bad flags fail before anything starts. */
  name: string;
}

/** The flags a clone shares with `podman run`: its own --pid (a server's) is not podman's --pid. */
function sharedFlags(raw: CloneRawFlags): RunFlags {
  const { pid: _pid, snapshot: _snapshot, exec: _exec, ...shared } = raw;
  return shared;
}

export function cloneFlagsFrom(raw: CloneRawFlags): CloneFlags {
  if ((raw.pid === undefined) === (raw.snapshot === undefined)) {
    throw errors.usage('give exactly one of --pid and --snapshot', 'Usage: fcvm snapshot run --pid SERVE_PID | --snapshot TAG [--name NAME] [--publish ...] [--exec CMD]');
  }
  let source: CloneSourceChoice;
  if (raw.pid !== undefined) {
    source = { kind: 'serve', pid: parsePid(raw.pid, 'Give the PID of "fcvm snapshot serve" (see "fcvm snapshot ls")') };
  } else source = { kind: 'snapshot', tag: validateName(raw.snapshot!, 'snapshot tag') };
  let exec: string[] | undefined;
  if (raw.exec !== undefined) {
    exec = splitCommand(raw.exec, '--exec');
    if (exec.length === 0) throw errors.invalidOption('--exec', raw.exec, 'it is empty', 'Give a command, e.g. --exec "cat /etc/hostname"');
    if (raw.detach) throw errors.usage('--exec runs one command and waits for it: it cannot be detached', 'Leave out -d, or --exec (then "fcvm exec NAME -- CMD")');
  }
  // Every flag a clone shares with `podman run` is checked the same way, right now.
  const { name } = runOptionsFromFlags('snapshot', [], sharedFlags(raw));
  return { source, exec, raw, name };
}

/**
 * The clone's run options: the snapshot's container (image, command, env, size) with
 * the clone's own name, network and ports. Its network defaults to its source's, or to
 * rootless where the user may not use bridged.
 */
export function cloneRunOptions(meta: SnapshotMeta, flags: CloneFlags): RunOptions {
  const sourceMode = meta.plan.network.mode;
  const network = cloneNetwork(meta, flags.raw);
  // A clone has its source's devices: it can swap bridged for rootless (both a virtio NIC), not add or drop the NIC.
  if ((network === 'none') !== (sourceMode === 'none')) {
    throw errors.invalidOption('--network', network, `the snapshot was taken with --network ${sourceMode}, and a clone keeps its source's devices`,
      sourceMode === 'none' ? 'Leave --network out, or snapshot a VM that has a network' : 'Use --network bridged or rootless');
  }
  const opts = runOptionsFromFlags(meta.plan.image, [], { ...sharedFlags(flags.raw), name: flags.name, network });
  // The container was started with its volumes: a clone keeps each container path, and
  // may point it at another host directory.
  const volumes = (meta.volumes?.mappings ?? []).map((v) => opts.volumes.find((o) => o.guest === v.guest) ?? v);
  const added = opts.volumes.find((o) => !volumes.some((v) => v.guest === o.guest));
  if (added) {
    throw errors.invalidOption('--map', `${added.host}:${added.guest}`, `the snapshot's container has no volume at ${added.guest}`,
      meta.volumes?.mappings.length ? `A clone may remap ${meta.volumes.mappings.map((v) => v.guest).join(', ')}` : 'A clone can only remap the volumes its source had');
  }
  return {
    ...opts,
    command: meta.plan.command,
    env: meta.plan.env,
    privileged: meta.plan.privileged,
    vcpus: meta.machine.vcpus,
    vcpusGiven: true,
    memoryMiB: meta.machine.memoryMiB,
    hypervisor: meta.machine.hypervisor,
    accel: meta.machine.accel,
    volumes,
  };
}

/**
 * A clone's NIC keeps the features its source's guest driver negotiated. A TAP offers
 * checksum and segmentation offloads and QEMU's slirp none, so a snapshot taken on a TAP
 * (bridged) cannot restore onto slirp: QEMU refuses to load the NIC ("load of migration
 * failed: Invalid argument"). Rootless over a TAP (a driver without slirp) is fine. The
 * refusal, if any, as an error the clone fails with before it boots. Pure.
 */
export function nicSwapRefusal(sourceMode: NetworkMode, network: NetworkMode, rootlessNic: 'tap' | 'user'): Error | undefined {
  if (sourceMode !== 'bridged' || network !== 'rootless' || rootlessNic === 'tap') return undefined;
  return errors.invalidOption('--network', network, 'the snapshot was taken bridged, and its NIC runs with TAP offloads that rootless networking (slirp) cannot give a clone',
    'Run the clone with --network bridged (as root), or snapshot a VM started with --network rootless');
}
