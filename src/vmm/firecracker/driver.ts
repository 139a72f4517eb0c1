import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { access, constants, link, mkdir, open, rename, rm, rmdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { reflink } from '../../disks/reflink.js';
import { errors } from '../../errors/catalogue.js';
import { socketTransport, type Transport } from '../../protocol/transport.js';
import type { CleanupStack } from '../../util/cleanup-stack.js';
import { run, which } from '../../util/exec.js';
import type { Logger } from '../../util/log.js';
import { deadline, firstChild, signalFromShellCode, sleep } from '../../util/proc.js';
import { VSOCK_PORTS, type DriverCapabilities, type GuestChannel, type RestoreSource, type RunningVm, type SnapshotInProgress, type StoppedVm, type VmExit, type VmmDriver, type VmSpec } from '../driver.js';
import { FirecrackerApi } from './api-client.js';
import { firecrackerNestedPlan } from './nested.js';
import { FC_FILES, firecrackerArgs, firecrackerCmdline, GUEST_CID, jailerArgs, jailerNamespaces, jailRoot, type JailerOptions } from './command.js';
import { jailerCgroup } from '../../jail/jailer-cgroup.js';
import { parseCgroupMounts } from '../../jail/cgroup-mounts.js';
import { connectHybridVsock } from './hybrid-vsock.js';
import { openResumable } from '../../protocol/resumable-link.js';
import { nsenterArgs } from '../../net/rootless-tap.js';
import { bootRequests, pauseRequest, resumeRequest, snapshotCreateRequest, snapshotLoadRequest, versionRequest, type FcMachine, type MemoryBackend } from './requests.js';
import { atLeast, formatVersion, MIN_VERSION, parseVersion, type Version } from './version.js';

/** Snapshots write all of guest memory; loads map it. Both get longer than other requests. */
const SNAPSHOT_TIMEOUT_MS = 120_000;
/** How long Firecracker may take to create its API socket. */
const START_TIMEOUT_MS = 10_000;
/** How long a guest channel may take to come back after a snapshot's vsock reset. */
const RESUME_TIMEOUT_MS = 30_000;

export interface FirecrackerDriverOptions {
  /** The firecracker binary (default: FCVM_FIRECRACKER_BIN, else "firecracker" on PATH). */
  binary?: string;
  /**
   * Start through Firecracker's jailer (chroot, dropped privileges, cgroups) with these
   * settings. Without it, a VM whose spec has a jail of root's (VmSpec.jail) is started
   * through the jailer found as FCVM_JAILER_BIN or "jailer" on PATH, as the VM's own uid,
   * in the VM's cgroup.
   */
  jailer?: JailerOptions;
}

/** Why KVM here cannot run an ordinary guest kernel, or undefined if it may. */
async function kvmProblem(): Promise<string | undefined> {
  if (!(await access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false))) return '/dev/kvm is missing or not accessible';
  // A PVM host's KVM only runs kernels built for PVM (see the project's FACTS).
  if (existsSync('/sys/module/kvm_pvm')) return 'this host\'s KVM is PVM, which cannot run an ordinary guest kernel';
  return undefined;
}

/**
 * The Firecracker driver: firecracker (optionally under its jailer) in the VM's working
 * directory on the disk root, driven over its API socket. Disks are reflinks, the
 * guest channels hybrid vsock, snapshots written by Firecracker itself, and restores
 * take memory from the snapshot's file or from a userfaultfd page server.
 *
 * Every path Firecracker sees is relative to its working directory (or its jail's
 * root): a snapshot records drive and vsock paths, and a clone in another directory
 * then finds its own files under the same names.
 */
export class FirecrackerDriver implements VmmDriver {
  readonly name = 'firecracker' as const;
  readonly capabilities: DriverCapabilities = {
    snapshot: true,
    snapshotRestored: true,
    snapshotResetsChannels: true,
    restoreMemory: ['file', 'uffd'],
    tcg: false,
    diskFormats: ['raw'],
    guestChannel: 'vsock',
    nicKinds: ['tap'],
    kernel: 'vmlinux',
    // Firecracker installs its own filters (the jailer's default, "advanced": arguments checked too).
    seccomp: 'firecracker (its own filters)',
    // The jailer needs root; a user's Firecracker runs as the user, under its own filters.
    userNamespaceJail: false,
  };

  constructor(
    private readonly log: Logger,
    private readonly opts: FirecrackerDriverOptions = {},
  ) {}

  private async binary(): Promise<string | undefined> {
    const b = this.opts.binary ?? process.env.FCVM_FIRECRACKER_BIN;
    if (b) return existsSync(b) ? b : undefined;
    return which('firecracker');
  }

  async unavailableReason(): Promise<string | undefined> {
    const why: string[] = [];
    const bin = await this.binary();
    if (!bin) why.push('no "firecracker" binary on PATH (set FCVM_FIRECRACKER_BIN, or install a release from the Firecracker project)');
    const kvm = await kvmProblem();
    if (kvm) why.push(kvm);
    if (bin && why.length === 0) {
      const v = parseVersion((await run(bin, ['--version']).catch(() => '')).match(/v?\d+\.\d+\.\d+/)?.[0] ?? '');
      if (!v) why.push(`"${bin} --version" did not say which version it is`);
      else if (!atLeast(v, MIN_VERSION)) why.push(`Firecracker ${formatVersion(v)} is older than ${formatVersion(MIN_VERSION)}, the first that discovers devices by ACPI as the guest kernel needs`);
    }
    if (this.opts.jailer && !existsSync(this.opts.jailer.binary)) why.push(`the jailer ${this.opts.jailer.binary} does not exist`);
    return why.length > 0 ? why.join('; ') : undefined;
  }

  boot(spec: VmSpec, cleanup: CleanupStack): Promise<RunningVm> {
    return this.launch(spec, cleanup, undefined);
  }

  /**
   * How this VM's Firecracker is jailed: as given to the driver, or for a spec jailed by
   * root, Firecracker's own jailer with the VM's uid and cgroup. A user's VM (jail mode
   * "user") runs without it, as the user, under Firecracker's own seccomp filters.
   */
  private async jailerFor(spec: VmSpec): Promise<JailerOptions | undefined> {
    if (this.opts.jailer) return this.opts.jailer;
    const jail = spec.jail;
    if (jail?.mode !== 'full') return undefined;
    const binary = process.env.FCVM_JAILER_BIN ?? (await which('jailer'));
    if (!binary || !existsSync(binary)) {
      throw errors.hypervisorUnavailable('firecracker', 'a jailed VM needs Firecracker\'s jailer, and there is none (install "jailer" from the same Firecracker release on PATH, or set FCVM_JAILER_BIN; --no-jail runs without it, unsafely)');
    }
    if (!jail.cgroup) return { binary, uid: jail.uid, gid: jail.gid };
    const mounts = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
    try {
      return { binary, uid: jail.uid, gid: jail.gid, cgroup: jailerCgroup(jail.cgroup.version, jail.cgroup.dirs, jail.limits, mounts) };
    } catch (e) {
      // v1 hierarchies with different parents: fcvm moves Firecracker into the cgroup
      // itself once its API is up, before the guest has any memory or runs (see launch).
      this.log.debug({ err: e }, 'the jailer cannot join the VM cgroup itself');
      return { binary, uid: jail.uid, gid: jail.gid };
    }
  }

  restore(spec: VmSpec, from: RestoreSource, cleanup: CleanupStack): Promise<RunningVm> {
    return this.launch(spec, cleanup, from);
  }

  private async launch(spec: VmSpec, cleanup: CleanupStack, from: RestoreSource | undefined): Promise<RunningVm> {
    if (!spec.diskDir) throw new Error('the Firecracker driver needs a disk directory on the disk root');
    const bin = await this.binary();
    if (!bin) throw errors.hypervisorUnavailable('firecracker', (await this.unavailableReason()) ?? 'no binary');
    const id = spec.id;
    const jailer = await this.jailerFor(spec);
    const chrootBase = join(spec.diskDir, 'jail');
    const work = jailer ? jailRoot(chrootBase, id) : spec.diskDir;
    await mkdir(work, { recursive: true, mode: 0o700 });
    // Disks: reflinks of their bases for writable ones; links to the files for the others.
    const drives: FcMachine['drives'] = [];
    for (const d of spec.disks) {
      if (d.format !== 'raw') throw errors.hypervisorUnavailable('firecracker', `it takes raw disks only, and disk "${d.id}" is ${d.format}`);
      const name = `${d.id}.raw`;
      if (d.cow) await reflink(d.path, join(work, name));
      else await placeFile(d.path, join(work, name), !!jailer);
      drives.push({ id: d.id, path: name, readOnly: d.readOnly });
    }
    let kernel = spec.kernel;
    let initrd = spec.initrd;
    if (jailer) {
      // Inside the jail only what is linked in exists.
      await placeFile(spec.kernel, join(work, 'vmlinux'), true);
      kernel = 'vmlinux';
      if (spec.initrd) {
        await placeFile(spec.initrd, join(work, 'initrd'), true);
        initrd = 'initrd';
      }
    }
    let memoryPath: string | undefined;
    let statePath = from?.state;
    if (from && jailer) {
      statePath = 'snapshot-state';
      await placeFile(from.state, join(work, statePath), true);
    }
    if (from?.memory.kind === 'file') {
      memoryPath = jailer ? 'snapshot-memory' : from.memory.path;
      if (jailer) await placeFile(from.memory.path, join(work, memoryPath), true);
    }
    await (await open(join(work, FC_FILES.log), 'w', 0o600)).close();
    if (jailer) await run('chown', ['-R', `${jailer.uid}:${jailer.gid}`, work]);
    const consoleFd = await open(join(work, FC_FILES.console), 'w', 0o600);
    // The jailer makes a cgroup per VM and leaves it behind (removed after the process, below).
    // (A VM cgroup of fcvm's own is removed by whoever made it.)
    if (jailer && !jailer.cgroup) cleanup.push('remove the jail\'s cgroup', () => rmdir(`/sys/fs/cgroup/firecracker/${id}`).catch(() => {}));

    // pdeathsig: the kernel kills Firecracker if fcvm dies, even by SIGKILL.
    const netns = jailer ? [] : spec.userNamespaceOf ? nsenterArgs(spec.userNamespaceOf) : spec.netns ? ['nsenter', `--net=/run/netns/${spec.netns}`, '--'] : [];
    // A nested-profile guest: the NV2 fork's flags and boot arguments (ARM64 only).
    const nested = spec.nested ? firecrackerNestedPlan(process.arch) : { args: [], bootArgs: [] };
    const argv = jailer
      ? [...jailerNamespaces(), jailer.binary, ...jailerArgs({ jailer, firecracker: bin, id, chrootBase, extra: nested.args, ...(spec.netns ? { netns: spec.netns } : {}) })]
      : [...netns, bin, ...firecrackerArgs(id, nested.args)];
    this.log.debug({ argv: argv.join(' '), cwd: work }, 'starting Firecracker');
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...argv], { cwd: work, stdio: ['ignore', consoleFd.fd, 'pipe'] });
    await consoleFd.close();
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    let exit: VmExit | undefined;
    const exited = new Promise<VmExit>((resolve) => {
      child.on('exit', (code, signal) => resolve((exit = jailer ? signalFromShellCode({ code, signal }) : { code, signal })));
      child.on('error', (e) => {
        stderr += e.message;
        resolve((exit = { code: 127, signal: null }));
      });
    });
    cleanup.push('kill Firecracker', async () => {
      if (exit) return;
      child.kill('SIGKILL');
      await exited;
    });

    const why = async (what: string, e?: unknown) => {
      await Promise.race([exited, deadline(200)]);
      const last = stderr.trim().split('\n').filter(Boolean).pop();
      return errors.vmmFailed(`${what}${last ? `: ${last}` : exit ? ` (it exited with ${exit.signal ?? `code ${exit.code}`})` : ''}`, e);
    };

    const api = new FirecrackerApi(join(work, FC_FILES.api));
    cleanup.push('close the Firecracker API client', () => api.close());
    let version: Version;
    try {
      version = await waitForApi(api, () => !exit);
    } catch (e) {
      throw await why('Firecracker did not start', e);
    }
    if (!atLeast(version, MIN_VERSION)) throw errors.hypervisorUnavailable('firecracker', `version ${formatVersion(version)} is older than ${formatVersion(MIN_VERSION)}`);
    // Jailed, Firecracker is the child of the namespace's PID 1, unshare's child (jailerNamespaces).
    const init = jailer ? firstChild(child.pid!) : undefined;
    const pid = jailer ? ((init && firstChild(init)) ?? child.pid!) : child.pid!;
    // A VM cgroup the jailer did not join: before any guest memory exists or a vCPU runs.
    if (jailer && !jailer.cgroup && spec.jail?.cgroup) await spec.jail.cgroup.join(pid);
    this.log.debug({ version: formatVersion(version) }, 'Firecracker API up');
    if (from) {
      let memory: MemoryBackend;
      if (from.memory.kind === 'file') memory = { kind: 'file', path: memoryPath! };
      else {
        // The page server listens where Firecracker (maybe jailed) can connect.
        await from.memory.serve(join(work, FC_FILES.uffd), jailer?.uid ?? process.getuid?.() ?? 0);
        memory = { kind: 'uffd', socket: FC_FILES.uffd };
      }
      await api.send(snapshotLoadRequest({ statePath: statePath!, memory, resume: true }, version), SNAPSHOT_TIMEOUT_MS);
    } else {
      const machine: FcMachine = {
        vcpus: spec.vcpus,
        memoryMiB: spec.memoryMiB,
        kernel,
        ...(initrd ? { initrd } : {}),
        bootArgs: firecrackerCmdline(spec, nested.bootArgs),
        drives,
        nics: spec.nics.map((n) => {
          if (n.kind !== 'tap') throw errors.hypervisorUnavailable('firecracker', 'it takes TAP network devices only');
          return { id: n.id, tap: n.tap, mac: n.mac };
        }),
        vsock: { cid: GUEST_CID, udsPath: FC_FILES.vsock },
      };
      for (const r of bootRequests(machine, version)) await api.send(r);
    }

    const vsockPath = join(work, FC_FILES.vsock);
    return {
      pid,
      consoleLog: join(work, FC_FILES.console),
      exited,
      connectChannel: (name: GuestChannel) => connectChannel(vsockPath, VSOCK_PORTS[name], () => !exit),
      pause: async () => void (await api.send(pauseRequest)),
      resume: async () => void (await api.send(resumeRequest)),
      // Firecracker writes the whole of guest memory.
      snapshotBytes: async () => spec.memoryMiB * 2 ** 20,
      snapshot: async (dir: string): Promise<SnapshotInProgress> => {
        // Firecracker writes both files in its own directory (or jail), on the disk root
        // like the snapshot directory: moving them is a rename.
        await api.send(snapshotCreateRequest(FC_FILES.snapshotState, FC_FILES.snapshotMemory), SNAPSHOT_TIMEOUT_MS);
        const state = join(dir, 'state');
        const memory = join(dir, 'memory');
        await rename(join(work, FC_FILES.snapshotState), state);
        await rename(join(work, FC_FILES.snapshotMemory), memory);
        // The VM is still paused: a reflink of each writable disk is its frozen copy.
        const disks = [];
        for (const d of spec.disks.filter((x) => !x.readOnly)) {
          const path = join(dir, `${d.id}.raw`);
          await reflink(join(work, `${d.id}.raw`), path);
          disks.push({ id: d.id, path, format: 'raw' as const });
        }
        return { files: { state, memory, disks }, complete: async () => {} };
      },
      stop: async (): Promise<StoppedVm> => {
        // The guest's disks are throwaway: nothing to flush.
        if (!exit) child.kill('SIGKILL');
        return { exit: await exited };
      },
    };
  }
}

/** Waits for the API socket and reads the version: the first request, so later ones send only what it knows. */
async function waitForApi(api: FirecrackerApi, alive: () => boolean): Promise<Version> {
  const until = Date.now() + START_TIMEOUT_MS;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    try {
      const v = (await api.send(versionRequest, 2000)) as { firecracker_version?: string };
      const parsed = parseVersion(v?.firecracker_version ?? '');
      if (!parsed) throw new Error(`GET /version answered ${JSON.stringify(v)}`);
      return parsed;
    } catch (e) {
      if (!alive() || Date.now() > until) throw e;
      await sleep(delay);
    }
  }
}

/** A file the VMM reads, by the name it expects: a hard link (a jail sees nothing else), else a symlink. */
async function placeFile(src: string, dst: string, mustLink: boolean): Promise<void> {
  await rm(dst, { force: true });
  try {
    await link(src, dst);
  } catch (e) {
    if (!mustLink) return symlink(src, dst);
    try {
      await reflink(src, dst);
    } catch {
      throw errors.vmmFailed(`cannot put ${src} into the jail (${(e as NodeJS.ErrnoException).code}): with the jailer, fcvm's files and the disk root must be on one filesystem`, e);
    }
  }
}

/**
 * A guest channel: a resumable session (protocol/resumable.ts) over hybrid vsock
 * connections, so that the connection reset every snapshot causes, in the source VM
 * too, is invisible to the protocol above.
 */
async function connectChannel(vsockPath: string, port: number, alive: () => boolean): Promise<Transport> {
  const connect = async () => {
    const sock = await connectHybridVsock(vsockPath, port, { timeoutMs: 10_000, alive });
    const t = socketTransport(sock);
    // The stream is paused until someone listens: no byte is dropped in between.
    return { ...t, onData: (cb: (c: Uint8Array) => void) => (t.onData(cb), void sock.resume()) };
  };
  try {
    return await openResumable({ connect, alive, resumeTimeoutMs: RESUME_TIMEOUT_MS });
  } catch (e) {
    throw errors.vmmFailed(`cannot connect to guest vsock port ${port} through ${vsockPath}`, e);
  }
}
