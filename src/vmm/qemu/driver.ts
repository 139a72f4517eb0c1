import { spawn } from 'node:child_process';
import { link, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { errors } from '../../errors/catalogue.js';
import { socketTransport, type Transport } from '../../protocol/transport.js';
import type { CleanupStack } from '../../util/cleanup-stack.js';
import { run, which } from '../../util/exec.js';
import type { Logger } from '../../util/log.js';
import { deadline } from '../../util/proc.js';
import { connectWhenReady } from '../../util/unix-socket.js';
import { writeKernelStub } from '../../snapshot/kernel-stub.js';
import { createMemoryFile } from '../../vm/memory-file.js';
import type { DiskSpec, DriverCapabilities, HostForward, RestoreSource, RunningVm, SnapshotInProgress, StoppedVm, VmExit, VmmDriver, VmSpec } from '../driver.js';
import { qemuArgs, qemuPaths } from './command.js';
import { boundConsoleLog } from '../console.js';
import { QmpClient } from './qmp.js';
import { describeVerdict, guardGuestTimer, TIMER_CHECK_ARGS, TimerCalibrationError } from './guest-timer.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

/** How long a migration (device state only: RAM is shared or file-backed) may take. */
const MIGRATION_TIMEOUT_MS = 60_000;

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
  };

  constructor(private readonly log: Logger) {}

  async unavailableReason(): Promise<string | undefined> {
    return (await which(QEMU_BINARY)) ? undefined : `${QEMU_BINARY} is not installed (apt-get install qemu-system-x86)`;
  }

  boot(spec: VmSpec, cleanup: CleanupStack): Promise<RunningVm> {
    return this.launch(spec, cleanup, undefined);
  }

  restore(spec: VmSpec, from: RestoreSource, cleanup: CleanupStack): Promise<RunningVm> {
    if (from.memory.kind !== 'file') throw errors.hypervisorUnavailable('qemu', 'it restores memory from the snapshot\'s file only, not from a userfaultfd server');
    return this.launch({ ...spec, kernel: from.kernel ?? spec.kernel }, cleanup, from.state, from.memory.path, from.memory.copy ?? false);
  }

  private async launch(given: VmSpec, cleanup: CleanupStack, stateFile: string | undefined, snapshotMemory?: string, copyMemory = false): Promise<RunningVm> {
    if (given.accel === 'tcg' && given.vcpus > 1) await requireTcgSafeQemu();
    // A cold VM's RAM is a shared file a snapshot can copy; a clone maps its snapshot's
    // privately, unless it is to have its own copy (sparse: only the pages the guest used).
    let memory: { path: string; shared: boolean };
    if (snapshotMemory && !copyMemory) memory = { path: snapshotMemory, shared: false };
    else {
      const path = await createMemoryFile(basename(given.runDir), given.runDir, given.memoryMiB);
      cleanup.push('remove RAM file', () => rm(path, { force: true }));
      if (snapshotMemory) await run('cp', ['--sparse=always', snapshotMemory, path]);
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
      bases.set(d.id, { path: d.path, format: d.format });
      disks.push({ id: d.id, path: overlay, format: 'qcow2', readOnly: false });
    }
    // A cold boot under TCG has its guest timer checked (guest-timer.ts): the kernel prints its calibration.
    const checkTimer = stateFile === undefined && given.accel === 'tcg';
    const spec: VmSpec = { ...given, disks, cmdline: checkTimer ? [given.cmdline, ...TIMER_CHECK_ARGS].join(' ') : given.cmdline };
    const args = qemuArgs(spec, { incoming: stateFile !== undefined, memory });
    this.log.debug({ argv: [QEMU_BINARY, ...args].join(' ') }, 'starting QEMU');
    // setpriv's pdeathsig makes the kernel kill QEMU if fcvm dies, even by SIGKILL.
    // nsenter puts QEMU in the VM's network namespace, where its TAP device is.
    const netns = spec.netns ? ['nsenter', `--net=/run/netns/${spec.netns}`, '--'] : [];
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...netns, QEMU_BINARY, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    let exit: VmExit | undefined;
    let noSpaceFor: string | undefined;
    const exited = new Promise<VmExit>((resolve) => {
      child.on('exit', (code, signal) => {
        // A RAM file on a filesystem that filled up: QEMU gets SIGBUS touching a page.
        if (signal === 'SIGBUS' && memory.shared) noSpaceFor ??= memory.path;
        exit = { code, signal, ...(noSpaceFor ? { noSpaceFor } : {}) };
        resolve(exit);
      });
      child.on('error', (e) => {
        stderr += e.message;
        exit = { code: 127, signal: null };
        resolve(exit);
      });
    });
    cleanup.push('kill QEMU', async () => {
      if (exit) return;
      child.kill('SIGKILL');
      await exited;
    });
    const lastError = async () => {
      await Promise.race([exited, deadline(200)]);
      return stderr.trim().split('\n').filter(Boolean).pop();
    };
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
        child.kill('SIGKILL');
      }
    });
    if (stateFile !== undefined) {
      try {
        await migrate(qmp, 'migrate-incoming', `exec:cat ${shellQuote(stateFile)}`);
      } catch (e) {
        const why = await lastError();
        throw errors.vmmFailed(`QEMU could not load the snapshot's device state${why ? `: ${why}` : ''}`, e);
      }
      // The loaded VM waits in "paused" (the source's run state at the snapshot).
      await qmp.execute('cont');
    }
    if (checkTimer) await this.checkGuestTimer(paths.console, qmp, () => !exit);
    const pid = child.pid!;
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
        const frozen: { disk: DiskSpec; path: string; depth: number; base: { path: string; format: 'raw' | 'qcow2' } | undefined }[] = [];
        // Disks first, while the block layer is active: the VM goes on in a new overlay
        // and the old one is never written again.
        for (const disk of spec.disks.filter((d) => !d.readOnly)) {
          const layer = layers.get(disk.id)!;
          const next = { node: `${disk.id}-${layer.depth + 1}`, path: join(spec.runDir, `${disk.id}.${layer.depth + 1}.qcow2`), depth: layer.depth + 1 };
          await qmp.execute('blockdev-snapshot-sync', { 'node-name': layer.node, 'snapshot-file': next.path, 'snapshot-node-name': next.node, format: 'qcow2' });
          frozen.push({ disk, path: layer.path, depth: layer.depth, base: bases.get(disk.id) });
          layers.set(disk.id, next);
        }
        const state = join(dir, 'state');
        await migrate(qmp, 'migrate', `exec:cat > ${shellQuote(state)}`);
        // RAM stays in the shared file, which the source goes on writing: copy it now.
        const ram = join(dir, 'memory');
        await run('cp', ['--sparse=always', memory.path, ram]);
        const disks = frozen.map((f) => ({ id: f.disk.id, path: join(dir, `${f.disk.id}.qcow2`), format: 'qcow2' as const }));
        // QEMU loads a kernel even to restore: a clone gets a stub of this one.
        const kernel = join(dir, 'kernel.stub');
        await writeKernelStub(spec.kernel, kernel);
        return {
          files: { state, memory: ram, disks, kernel },
          complete: async () => {
            for (const [i, f] of frozen.entries()) await selfContained(f.path, f.depth, f.base, disks[i]!.path);
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
          if (!done) child.kill('SIGKILL');
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
let qemuMajor: Promise<number> | undefined;

/**
 * QEMU 7.2's multi-threaded TCG can keep running a stale translation of kernel code that
 * one vCPU patched while another ran it: a guest flipping a static key (the first CPU
 * quota in it, say) then traps on the patch's INT3 forever. 26,000 such patches of hot
 * scheduler code ran clean on QEMU 10.0; 7.2 hung within 4,000 and within 6,000.
 */
async function requireTcgSafeQemu(): Promise<void> {
  qemuMajor ??= run(QEMU_BINARY, ['--version']).then((v) => Number(/version (\d+)\./.exec(v)?.[1] ?? 0), () => 0);
  const major = await qemuMajor;
  if (major < TCG_SMP_MIN_MAJOR) {
    throw errors.preflight('QEMU', `QEMU ${major || 'of unknown version'} can hang a guest with more than one vCPU under TCG (it runs stale copies of kernel code the guest patched)`, `Install QEMU ${TCG_SMP_MIN_MAJOR} or newer (on Debian 12: apt-get install -t bookworm-backports qemu-system-x86, as scripts/install.sh does), or run with --cpu 1`);
  }
}

/**
 * Runs an outgoing or incoming migration of device state (RAM is excluded with
 * x-ignore-shared) and waits for QEMU's MIGRATION event to say it completed.
 */
async function migrate(qmp: QmpClient, command: 'migrate' | 'migrate-incoming', uri: string): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'x-ignore-shared', state: true }, { capability: 'events', state: true }],
  });
  let onEvent!: (name: string, data: unknown) => void;
  let onClose!: () => void;
  const done = new Promise<void>((resolve, reject) => {
    onEvent = (name, data) => {
      if (name !== 'MIGRATION') return;
      const status = (data as { status?: string }).status;
      if (status === 'completed') resolve();
      else if (status === 'failed' || status === 'cancelled') reject(new Error(`migration ${status}`));
    };
    onClose = () => reject(new Error('QEMU exited during the migration'));
    qmp.on('event', onEvent);
    qmp.once('close', onClose);
  });
  done.catch(() => {});
  try {
    await qmp.execute(command, { uri });
    const timeout = deadline(MIGRATION_TIMEOUT_MS).then(() => 'timeout' as const);
    if ((await Promise.race([done, timeout])) === 'timeout') {
      // A migration left running would stop the VM whenever it completes.
      await qmp.execute('migrate_cancel').catch(() => {});
      await Promise.race([done.catch(() => {}), deadline(5000)]);
      throw new Error(`migration did not complete within ${MIGRATION_TIMEOUT_MS / 1000}s`);
    }
  } finally {
    qmp.off('event', onEvent);
    qmp.off('close', onClose);
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

/** Quotes a path for the shell that QEMU's exec: migration URIs run. */
function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function connectWithRetry(path: string, timeoutMs: number, alive: () => boolean): Promise<Transport> {
  try {
    return socketTransport(await connectWhenReady(path, timeoutMs, alive));
  } catch (e) {
    throw errors.vmmFailed(`cannot connect to the guest channel socket ${path}`, e);
  }
}
