import { closeSync, openSync } from 'node:fs';
import { chmod, chown, link } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../../errors/catalogue.js';
import { socketTransport, type Transport } from '../../protocol/transport.js';
import type { CleanupStack } from '../../util/cleanup-stack.js';
import { run, which } from '../../util/exec.js';
import type { Logger } from '../../util/log.js';
import { deadline } from '../../util/proc.js';
import { QEMU_IO_THREADS } from '../../jail/cgroup.js';
import { jailOps } from '../../os/jail-ops.js';
import { connectWhenReady } from '../../util/unix-socket.js';
import type { DiskSpec, DriverCapabilities, RunningVm, SnapshotInProgress, StoppedVm, VmExit, VmmDriver, VmSpec } from '../driver.js';
import { qemuArgs, qemuPaths } from './command.js';
import { QmpClient } from './qmp.js';
import { FIRST_PASSED_FD, spawnJailed } from './jail.js';
import { loadDeviceState, saveDeviceState } from './migration.js';
import { spawnUnjailed, type VmmProcess } from './process.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

/** The QEMU `microvm` driver, controlled through QMP. */
export class QemuDriver implements VmmDriver {
  readonly name = 'qemu' as const;
  readonly capabilities: DriverCapabilities = {
    snapshot: true,
    uffd: false,
    tcg: true,
    diskFormats: ['raw', 'qcow2'],
    guestChannel: 'virtio-serial',
    nicKinds: ['tap', 'user'],
  };

  /** `cacheDir` keeps what is worth remembering across runs (the jail's host file list). */
  constructor(private readonly log: Logger, private readonly cacheDir?: string) {}

  async unavailableReason(): Promise<string | undefined> {
    return (await which(QEMU_BINARY)) ? undefined : `${QEMU_BINARY} is not installed (apt-get install qemu-system-x86)`;
  }

  boot(spec: VmSpec, cleanup: CleanupStack): Promise<RunningVm> {
    return this.launch(spec, cleanup, undefined);
  }

  restore(spec: VmSpec, stateFile: string, cleanup: CleanupStack): Promise<RunningVm> {
    return this.launch(spec, cleanup, stateFile);
  }

  private async launch(spec: VmSpec, cleanup: CleanupStack, stateFile: string | undefined): Promise<RunningVm> {
    const jail = spec.jail;
    const memoryFd = jail && !spec.memory.shared ? await sealedMemory(spec, cleanup) : undefined;
    const args = qemuArgs(spec, {
      incoming: stateFile !== undefined,
      sandbox: jail !== undefined,
      ...(memoryFd !== undefined ? { memoryPath: `/proc/self/fd/${FIRST_PASSED_FD}` } : {}),
      ...(jail ? { ioThreads: QEMU_IO_THREADS } : {}),
    });
    this.log.debug({ argv: [QEMU_BINARY, ...args].join(' '), jail: jail ? { uid: jail.uid, cgroup: jail.cgroup?.dirs } : 'none' }, 'starting QEMU');
    let vmm: VmmProcess;
    if (jail) {
      const qemu = (await which(QEMU_BINARY)) ?? QEMU_BINARY;
      const setpriv = (await which('setpriv')) ?? '/usr/bin/setpriv';
      vmm = await spawnJailed(spec, jail, { qemu, setpriv, args, fds: memoryFd !== undefined ? [memoryFd] : [], cacheFile: this.cacheDir && join(this.cacheDir, 'qemu-jail-files.json') });
    } else vmm = spawnUnjailed(QEMU_BINARY, args, spec.netns);
    let exit: VmExit | undefined;
    const exited = vmm.exited.then((x) => (exit = x));
    cleanup.push('kill QEMU', async () => {
      if (exit) return;
      vmm.kill();
      await exited;
    });
    const lastError = () => vmm.lastError();
    const paths = qemuPaths(spec.runDir);
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(paths.qmp, 10_000, () => !exit);
    } catch (e) {
      const why = await lastError();
      throw errors.vmmFailed(`QEMU failed to start${why ? `: ${why}` : ''}`, e);
    }
    cleanup.push('close QMP', () => qmp.close());
    qmp.on('event', (name, data) => this.log.debug({ event: name, data }, 'QMP event'));
    if (stateFile !== undefined) {
      try {
        await loadDeviceState(qmp, paths.migrateIn, stateFile, () => !exit);
      } catch (e) {
        const why = await lastError();
        throw errors.vmmFailed(`QEMU could not load the snapshot's device state${why ? `: ${why}` : ''}`, e);
      }
      // The loaded VM waits in "paused" (the source's run state at the snapshot).
      await qmp.execute('cont');
    }
    const pid = vmm.pid;
    const log = this.log;
    const layers = new Map(spec.disks.filter((d) => !d.readOnly).map((d) => [d.id, { node: d.id, path: d.path, depth: 0 }]));

    const vm: RunningVm = {
      pid,
      consoleLog: paths.console,
      exited,
      connectChannel: (name) => connectWithRetry(paths.channel(name), 10_000, () => !exit),
      pause: async () => void (await qmp.execute('stop')),
      resume: async () => void (await qmp.execute('cont')),
      snapshot: async (dir: string): Promise<SnapshotInProgress> => {
        const frozen: { disk: DiskSpec; path: string; depth: number }[] = [];
        // Disks first, while the block layer is active: the VM goes on in a new overlay
        // and the old one is never written again.
        for (const disk of spec.disks.filter((d) => !d.readOnly)) {
          const layer = layers.get(disk.id)!;
          const next = { node: `${disk.id}-${layer.depth + 1}`, path: join(spec.runDir, `${disk.id}.${layer.depth + 1}.qcow2`), depth: layer.depth + 1 };
          await qmp.execute('blockdev-snapshot-sync', { 'node-name': layer.node, 'snapshot-file': next.path, 'snapshot-node-name': next.node, format: 'qcow2' });
          frozen.push({ disk, path: layer.path, depth: layer.depth });
          layers.set(disk.id, next);
        }
        const state = join(dir, 'state');
        await saveDeviceState(qmp, paths.migrateOut, state, jail ? { uid: jail.uid, gid: jail.gid } : undefined);
        // RAM stays in the shared file, which the source goes on writing: copy it now.
        const memory = join(dir, 'memory');
        await run('cp', ['--sparse=always', spec.memory.path, memory]);
        const disks = frozen.map((f) => ({ id: f.disk.id, path: join(dir, `${f.disk.id}.qcow2`) }));
        return {
          files: { state, memory, disks },
          complete: async () => {
            for (const [i, f] of frozen.entries()) {
              await selfContained(f.path, f.depth, f.disk, disks[i]!.path);
              // A frozen layer the jailed VMM made is the snapshot's now: root's, and
              // readable by the clones' VMMs, which see it only through their own jails
              // (the snapshot's directory is root's alone).
              if (jail?.mode === 'full') {
                await chown(disks[i]!.path, 0, 0);
                await chmod(disks[i]!.path, 0o644);
              }
            }
          },
        };
      },
      stop: async (): Promise<StoppedVm> => {
        if (!exit) {
          await Promise.race([qmp.execute('quit').catch((e) => log.debug({ err: e }, 'quit failed')), deadline(2000)]);
          const done = await Promise.race([exited, deadline(3000).then(() => undefined)]);
          if (!done) vmm.kill();
        }
        return { exit: await exited };
      },
    };
    return vm;
  }
}

/**
 * Makes `out` a copy of the frozen layer `path` whose only backing file is the disk's
 * base image. A first layer already is: it is hard-linked (it is never written again).
 * A deeper layer is copied and rebased, which pulls in the layers in between.
 */
async function selfContained(path: string, depth: number, disk: DiskSpec, out: string): Promise<void> {
  if (depth === 0) {
    try {
      await link(path, out);
      return;
    } catch {
      // another filesystem: copy instead
    }
  }
  await run('cp', ['--sparse=always', '--reflink=auto', path, out]);
  if (depth > 0 && disk.backing) await run('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-b', disk.backing.path, '-F', disk.backing.format, out]);
}

async function connectWithRetry(path: string, timeoutMs: number, alive: () => boolean): Promise<Transport> {
  try {
    return socketTransport(await connectWhenReady(path, timeoutMs, alive));
  } catch (e) {
    throw errors.vmmFailed(`cannot connect to the guest channel socket ${path}`, e);
  }
}

/**
 * A clone's RAM for a jailed QEMU. QEMU 7.2 maps a private copy-on-write view only of a
 * file it opened read-write, so a clone mapping the snapshot's memory file could write
 * to what every other clone reads. It maps a sealed memfd instead, which no one can
 * write: the memory server's (shared by all its clones), or else a copy made here.
 */
async function sealedMemory(spec: VmSpec, cleanup: CleanupStack): Promise<number> {
  if (spec.memory.sealedFd !== undefined) return spec.memory.sealedFd;
  const ops = await jailOps();
  const src = openSync(spec.memory.path, 'r');
  let fd: number;
  try {
    fd = ops.sealedCopy(src, spec.memoryMiB * 2 ** 20, `fcvm-${spec.name}`);
  } finally {
    closeSync(src);
  }
  cleanup.push('close the sealed RAM copy', () => closeSync(fd));
  return fd;
}
