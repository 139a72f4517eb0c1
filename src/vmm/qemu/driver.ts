import { closeSync, openSync } from 'node:fs';
import { chmod, chown, link, rm, stat } from 'node:fs/promises';
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
import { writeKernelStub } from '../../snapshot/kernel-stub.js';
import { createMemoryFile } from '../../vm/memory-file.js';
import type { DiskSpec, DriverCapabilities, HostForward, RestoreSource, RunningVm, SnapshotInProgress, StoppedVm, VmExit, VmmDriver, VmSpec } from '../driver.js';
import { qemuArgs, qemuPaths, SANDBOX } from './command.js';
import { boundConsoleLog } from '../console.js';
import { QmpClient } from './qmp.js';
import { nestedCpu } from '../nested.js';
import { FIRST_PASSED_FD, spawnJailed } from './jail.js';
import { loadDeviceState, saveDeviceState } from './migration.js';
import { spawnUnjailed, type VmmProcess } from './process.js';
import { QEMU_BINARY, qemuVersion } from './version.js';
import { describeVerdict, guardGuestTimer, TIMER_CHECK_ARGS, TimerCalibrationError } from './guest-timer.js';


/** The QEMU `microvm` driver, controlled through QMP. */
export class QemuDriver implements VmmDriver {
  readonly name = 'qemu' as const;
  readonly capabilities: DriverCapabilities = {
    snapshot: true,
    // A clone's RAM is a private mapping of its snapshot's file, which QEMU cannot copy.
    snapshotRestored: false,
    snapshotResetsChannels: false,
    restoreMemory: ['file'],
    tcg: true,
    kernel: 'bzImage',
    diskFormats: ['raw', 'qcow2'],
    guestChannel: 'virtio-serial',
    nicKinds: ['tap', 'user'],
    seccomp: `qemu -sandbox ${SANDBOX}`,
    userNamespaceJail: true,
  };

  /** `cacheDir` keeps what is worth remembering across runs (the jail's host file list). */
  constructor(private readonly log: Logger, private readonly cacheDir?: string) {}

  async unavailableReason(): Promise<string | undefined> {
    return (await which(QEMU_BINARY)) ? undefined : `${QEMU_BINARY} is not installed (apt-get install qemu-system-x86)`;
  }

  boot(spec: VmSpec, cleanup: CleanupStack): Promise<RunningVm> {
    return this.launch(spec, cleanup, undefined);
  }

  restore(spec: VmSpec, from: RestoreSource, cleanup: CleanupStack): Promise<RunningVm> {
    if (from.memory.kind !== 'file') throw errors.hypervisorUnavailable('qemu', 'it restores memory from the snapshot\'s file only, not from a userfaultfd server');
    const { path, sealedFd, copy } = from.memory;
    return this.launch({ ...spec, kernel: from.kernel ?? spec.kernel }, cleanup, from.state, { path, ...(sealedFd !== undefined ? { sealedFd } : {}), ...(copy ? { copy } : {}) });
  }

  private async launch(given: VmSpec, cleanup: CleanupStack, stateFile: string | undefined, snapshotMemory?: { path: string; sealedFd?: number; copy?: boolean }): Promise<RunningVm> {
    if (given.accel === 'tcg' && given.vcpus > 1) await requireTcgSafeQemu();
    const jail = given.jail;
    // A jailed VMM of root's runs as the VM's own uid: what it writes must be that uid's.
    const owner = jail?.mode === 'full' ? { uid: jail.uid, gid: jail.gid } : undefined;
    // A cold VM's RAM is a shared file a snapshot can copy; a clone maps its snapshot's
    // privately, unless it is to have its own copy (sparse: only the pages the guest used).
    let memory: { path: string; shared: boolean };
    if (snapshotMemory && !snapshotMemory.copy) memory = { path: snapshotMemory.path, shared: false };
    else {
      const path = await createMemoryFile(given.id, given.runDir, given.memoryMiB);
      cleanup.push('remove RAM file', () => rm(path, { force: true }));
      if (snapshotMemory) await run('cp', ['--sparse=always', snapshotMemory.path, path]);
      if (owner) await chown(path, owner.uid, owner.gid);
      memory = { path, shared: true };
    }
    // Copy-on-write disks are qcow2 overlays on their base, in the run directory.
    const bases = new Map<string, { path: string; format: 'raw' | 'qcow2' }>();
    const disks: DiskSpec[] = [];
    for (const d of given.disks) {
      if (!d.cow) {
        disks.push(d);
        continue;
      }
      const overlay = join(given.runDir, `${d.id}.qcow2`);
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', d.format, '-b', d.path, overlay]);
      if (owner) await chown(overlay, owner.uid, owner.gid);
      bases.set(d.id, { path: d.path, format: d.format });
      disks.push({ id: d.id, path: overlay, format: 'qcow2', readOnly: false });
    }
    // A cold boot under TCG has its guest timer checked (guest-timer.ts): the kernel prints its calibration.
    const checkTimer = stateFile === undefined && given.accel === 'tcg';
    const spec: VmSpec = { ...given, disks, cmdline: checkTimer ? [given.cmdline, ...TIMER_CHECK_ARGS].join(' ') : given.cmdline };
    // A nested-profile guest runs VMs: under KVM the host must allow it (kvm's nested=1).
    const cpuVirt = spec.nested ? nestedCpu(spec.accel) : undefined;
    // A jailed clone maps a sealed memfd, passed as an fd, instead of the snapshot's file.
    const memoryFd = jail && !memory.shared ? await sealedMemory(spec, memory.path, snapshotMemory?.sealedFd, cleanup) : undefined;
    const freePageReporting = await hasFreePageReporting();
    const args = qemuArgs(spec, {
      incoming: stateFile !== undefined,
      freePageReporting,
      memory: memoryFd !== undefined ? { path: `/proc/self/fd/${FIRST_PASSED_FD}`, shared: false } : memory,
      sandbox: jail !== undefined,
      ...(jail ? { ioThreads: QEMU_IO_THREADS } : {}),
      ...(cpuVirt ? { cpuVirt } : {}),
    });
    this.log.debug({ argv: [QEMU_BINARY, ...args].join(' '), jail: jail ? { uid: jail.uid, cgroup: jail.cgroup?.dirs } : 'none' }, 'starting QEMU');
    let vmm: VmmProcess;
    if (jail) {
      if (jail.namespaces && !(await which('bwrap'))) throw errors.preflight('command bwrap', 'not found on PATH', 'Install it: apt-get install -y bubblewrap (or run with --no-jail, which is unsafe)');
      const qemu = (await which(QEMU_BINARY)) ?? QEMU_BINARY;
      const setpriv = (await which('setpriv')) ?? '/usr/bin/setpriv';
      vmm = await spawnJailed(spec, jail, {
        qemu,
        setpriv,
        args,
        memory,
        fds: memoryFd !== undefined ? [memoryFd] : [],
        cacheFile: this.cacheDir && join(this.cacheDir, 'qemu-jail-files.json'),
      });
    } else vmm = spawnUnjailed(QEMU_BINARY, args, spec.netns);
    let exit: VmExit | undefined;
    let noSpaceFor: string | undefined;
    const exited = vmm.exited.then((x) => {
      // A RAM file on a filesystem that filled up: QEMU gets SIGBUS touching a page.
      if (x.signal === 'SIGBUS' && memory.shared) noSpaceFor ??= memory.path;
      return (exit = { ...x, ...(noSpaceFor ? { noSpaceFor } : {}) });
    });
    cleanup.push('kill QEMU', async () => {
      if (exit) return;
      vmm.kill();
      await exited;
    });
    const lastError = () => vmm.lastError();
    const paths = qemuPaths(spec.runDir);
    cleanup.push('stop bounding the console log', boundConsoleLog(paths.console));
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(paths.qmp, 10_000, () => !exit);
    } catch (e) {
      const why = await lastError();
      throw errors.vmmFailed(`QEMU failed to start${why ? `: ${why}` : ''}`, e);
    }
    cleanup.push('close QMP', () => qmp.close());
    qmp.on('event', (name, data) => {
      this.log.debug({ event: name, data }, 'QMP event');
      // A disk that cannot grow on a full host filesystem pauses the VM (werror=enospc):
      // it would wait forever, so it is ended, saying why.
      const e = data as { nospace?: boolean; device?: string; 'node-name'?: string };
      if (name === 'BLOCK_IO_ERROR' && e.nospace && !exit) {
        const id = e.device || e['node-name'] || '';
        noSpaceFor = spec.disks.find((d) => id.startsWith(d.id))?.path ?? spec.runDir;
        vmm.kill();
      }
    });
    if (stateFile !== undefined) {
      try {
        await loadDeviceState(qmp, paths.migrateIn, stateFile, () => !exit);
      } catch (e) {
        const why = await lastError();
        throw errors.vmmFailed(`QEMU could not load the snapshot's device state: ${why ?? (e as Error).message}`, e);
      }
      // The loaded VM waits in "paused" (the source's run state at the snapshot).
      await qmp.execute('cont');
    }
    // Proof from QEMU itself that the VM runs on KVM (or not), kept in the VM's state.
    const kvm = await qmp.execute<{ enabled: boolean; present: boolean }>('query-kvm');
    if (spec.accel === 'kvm' && !kvm.enabled) throw errors.vmmFailed(`QEMU was asked for KVM but query-kvm says enabled=${kvm.enabled}, present=${kvm.present}`);
    if (checkTimer) await this.checkGuestTimer(paths.console, qmp, () => !exit);
    const pid = vmm.pid;
    const log = this.log;
    const layers = new Map(spec.disks.filter((d) => !d.readOnly).map((d) => [d.id, { node: d.id, path: d.path, depth: 0 }]));

    const vm: RunningVm = {
      pid,
      kvm: { enabled: kvm.enabled, present: kvm.present },
      consoleLog: paths.console,
      exited,
      connectChannel: (name) => connectWithRetry(paths.channel(name), 10_000, () => !exit),
      pause: async () => void (await qmp.execute('stop')),
      resume: async () => void (await qmp.execute('cont')),
      // The balloon's free page reporting punches holes in a shared RAM file; a clone's
      // private mapping of its snapshot's file is never punched (command.ts).
      ...(memory.shared && freePageReporting ? { memoryHeld: async () => (await stat(memory.path)).blocks * 512 } : {}),
      // The RAM copy is sparse: the pages the guest touched and the VMM still holds.
      snapshotBytes: async () => (await stat(memory.path)).blocks * 512,
      snapshot: async (dir: string): Promise<SnapshotInProgress> => {
        const frozen: { disk: DiskSpec; path: string; depth: number; base: { path: string; format: 'raw' | 'qcow2' } | undefined }[] = [];
        const t0 = performance.now();
        // Disks first, while the block layer is active: the VM goes on in a new overlay
        // and the old one is never written again.
        for (const disk of spec.disks.filter((d) => !d.readOnly)) {
          const layer = layers.get(disk.id)!;
          const next = { node: `${disk.id}-${layer.depth + 1}`, path: join(spec.runDir, `${disk.id}.${layer.depth + 1}.qcow2`), depth: layer.depth + 1 };
          await qmp.execute('blockdev-snapshot-sync', { 'node-name': layer.node, 'snapshot-file': next.path, 'snapshot-node-name': next.node, format: 'qcow2' });
          frozen.push({ disk, path: layer.path, depth: layer.depth, base: bases.get(disk.id) });
          layers.set(disk.id, next);
        }
        const t1 = performance.now();
        const state = join(dir, 'state');
        await saveDeviceState(qmp, paths.migrateOut, state, jail ? { uid: jail.uid, gid: jail.gid } : undefined);
        // RAM stays in the shared file, which the source goes on writing: copy it now.
        const ram = join(dir, 'memory');
        const t2 = performance.now();
        await run('cp', ['--sparse=always', memory.path, ram]);
        log.debug({ disksMs: Math.round(t1 - t0), deviceStateMs: Math.round(t2 - t1), ramMs: Math.round(performance.now() - t2) }, 'snapshot: the paused steps');
        const disks = frozen.map((f) => ({ id: f.disk.id, path: join(dir, `${f.disk.id}.qcow2`), format: 'qcow2' as const }));
        // QEMU loads a kernel even to restore: a clone gets a stub of this one (written
        // once the source runs again).
        const kernel = join(dir, 'kernel.stub');
        return {
          files: { state, memory: ram, disks, kernel },
          complete: async () => {
            await writeKernelStub(spec.kernel, kernel);
            for (const [i, f] of frozen.entries()) {
              await selfContained(f.path, f.depth, f.base, disks[i]!.path);
              // A frozen layer the jailed VMM made is the snapshot's now: root's, and
              // readable by the clones' VMMs, which see it only through their own jails
              // (the snapshot's directory is root's alone).
              if (owner) {
                await chown(disks[i]!.path, 0, 0);
                await chmod(disks[i]!.path, 0o644);
              }
            }
          },
        };
      },
      addHostForwards: async (nic, forwards) => {
        for (const f of forwards) {
          // Only HMP has hostfwd_add; it answers with text, empty when it worked.
          const said = await qmp.execute<string>('human-monitor-command', { 'command-line': hostfwdAddCommand(nic, f) });
          if (said.trim()) throw errors.vmmFailed(`QEMU could not forward ${f.proto} ${f.hostIp}:${f.hostPort} to the guest's port ${f.guestPort}: ${said.trim()}`);
        }
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

  /** Resets a guest whose APIC timer calibrated wrong (see guest-timer.ts), before anything runs in it. */
  private async checkGuestTimer(consoleLog: string, qmp: QmpClient, alive: () => boolean): Promise<void> {
    // -no-reboot turns every reset into a shutdown; a reset asked for here is a reset.
    const reset = async () => {
      await qmp.execute('set-action', { reboot: 'reset' });
      await qmp.execute('system_reset');
      await qmp.execute('set-action', { reboot: 'shutdown' });
    };
    try {
      await guardGuestTimer({ consoleLog, reset, alive, log: this.log });
    } catch (e) {
      if (e instanceof TimerCalibrationError) throw errors.guestTimer(describeVerdict(e.verdict), e.resets);
      throw e;
    }
  }
}

/** The HMP command that adds one host forward to the user-mode NIC `nic`. Pure. */
export function hostfwdAddCommand(nic: string, f: HostForward): string {
  return `hostfwd_add ${nic} ${f.proto}:${f.hostIp}:${f.hostPort}-:${f.guestPort}`;
}

/** The oldest QEMU whose TCG runs a multi-vCPU guest that patches its own kernel (tested: 7.2 hangs, 10.0 does not). */
export const TCG_SMP_MIN_MAJOR = 10;
/**
 * Free page reporting needs a clone to open its snapshot's RAM file read-only while
 * mapping it writable (`rom=off`, QEMU 8.2): QEMU punches a reported page out of a
 * privately mapped file too, and that file is every sibling clone's memory. An older
 * QEMU (bookworm's 7.2, in the nested guest) gets no balloon.
 */
async function hasFreePageReporting(): Promise<boolean> {
  const v = await qemuVersion();
  return v.major > 8 || (v.major === 8 && v.minor >= 2);
}

/**
 * QEMU 7.2's multi-threaded TCG can keep running a stale translation of kernel code that
 * one vCPU patched while another ran it: a guest flipping a static key (the first CPU
 * quota in it, say) then traps on the patch's INT3 forever. 26,000 such patches of hot
 * scheduler code ran clean on QEMU 10.0; 7.2 hung within 4,000 and within 6,000.
 */
async function requireTcgSafeQemu(): Promise<void> {
  const { major } = await qemuVersion();
  if (major < TCG_SMP_MIN_MAJOR) {
    throw errors.preflight('QEMU', `QEMU ${major || 'of unknown version'} can hang a guest with more than one vCPU under TCG (it runs stale copies of kernel code the guest patched)`, `Install QEMU ${TCG_SMP_MIN_MAJOR} or newer (on Debian 12: apt-get install -t bookworm-backports qemu-system-x86, as scripts/install.sh does), or run with --cpu 1`);
  }
}

/**
 * Makes `out` a copy of the frozen layer `path` whose only backing file is the disk's
 * base image. A first layer on a raw base already is: it is hard-linked (it is never
 * written again). A deeper layer, or one on a snapshot's own layer (a VM restored from a
 * startup snapshot), is copied and rebased onto the image below, which pulls in the
 * layers in between.
 */
async function selfContained(path: string, depth: number, base: { path: string; format: 'raw' | 'qcow2' } | undefined, out: string): Promise<void> {
  const onLayer = base?.format === 'qcow2';
  if (depth === 0 && !onLayer) {
    try {
      await link(path, out);
      return;
    } catch {
      // another filesystem: copy instead
    }
  }
  await run('cp', ['--sparse=always', '--reflink=auto', path, out]);
  const below = onLayer ? await backingOf(base.path) : base;
  if ((depth > 0 || onLayer) && below) await run('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-b', below.path, '-F', below.format, out]);
}

/** The backing file of a qcow2 image, and its format. */
async function backingOf(qcow2: string): Promise<{ path: string; format: 'raw' | 'qcow2' } | undefined> {
  const info = JSON.parse(await run('qemu-img', ['info', '--output=json', '-U', qcow2])) as { 'full-backing-filename'?: string; 'backing-filename-format'?: string };
  const path = info['full-backing-filename'];
  if (!path) return undefined;
  return { path, format: info['backing-filename-format'] === 'qcow2' ? 'qcow2' : 'raw' };
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
async function sealedMemory(spec: VmSpec, path: string, given: number | undefined, cleanup: CleanupStack): Promise<number> {
  if (given !== undefined) return given;
  const ops = await jailOps();
  const src = openSync(path, 'r');
  let fd: number;
  try {
    fd = ops.sealedCopy(src, spec.memoryMiB * 2 ** 20, `fcvm-${spec.name}`);
  } finally {
    closeSync(src);
  }
  cleanup.push('close the sealed RAM copy', () => closeSync(fd));
  return fd;
}
