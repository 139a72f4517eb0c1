import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import { cloneRunOptions, type CloneFlags } from '../options/clone-options.js';
import type { RunOptions } from '../options/run-options.js';
import type { VmState } from '../state/vm-state.js';
import { processStartTime } from '../util/proc.js';
import { replaceStep, runBeside, type Step } from '../util/steps.js';
import { agentFailure, claimName, logBeside } from './boot-steps.js';
import { cloneSteps, openSnapshot, restoreVm } from './clone-steps.js';
import { handOutNetwork, poolNetwork, type PoolNetwork } from './pool-network.js';
import { connectNetwork } from './network-step.js';
import { runVm } from './podman-run.js';
import { interrupted, type Ctx, type RunEnv } from './run-context.js';
import { claimJail } from './jail-step.js';
import { superviseContainer } from './supervise.js';
import { Readable, Writable } from 'node:stream';
import { execInVm } from '../exec/exec-client.js';
import { controlSocketPath, startControlServer } from './control-server.js';
import type { UnixServer } from './unix-server.js';
import { deadline } from '../util/proc.js';

/** What a memory server tells a pool member when it starts it. */
export interface PoolJob {
  servePid: number;
  network: PoolNetwork;
}

/** What a pool member tells its server, over the IPC channel. */
export type MemberMessage =
  | { ready: true }
  | { started: { name: string; runDir: string } }
  | { failed: { code: string; message: string; hint?: string } };

/** What a server tells a pool member. */
export type ServerMessage = { handout: CloneFlags } | { end: true };

/** How a member talks to its server: a pool member is the server's child, with an IPC channel. */
export interface MemberLink {
  send(m: MemberMessage): void;
  /** Resolves with the clone's flags once the server hands the member out. */
  handout: Promise<CloneFlags>;
  /** Resolves when the server ends a handed-out member at once (its --exec is done). */
  ended: Promise<void>;
}

/**
 * A pooled clone, as named steps: the clone's own steps up to a restored VM whose agent
 * said hello, then a wait for the hand-out, then everything that makes it somebody's:
 * its name (and so its network index), log, address and ports, and in vm.restored its
 * hostname, clock and fresh randomness. Nothing of those exists before the hand-out.
 */
export function poolMemberSteps(job: PoolJob, link: MemberLink): readonly Step<Ctx>[] {
  const placeholder = `pool-${randomBytes(4).toString('hex')}`;
  const flags0: CloneFlags = { source: { kind: 'serve', pid: job.servePid }, exec: undefined, raw: { network: job.network }, name: placeholder };
  let steps = [...cloneSteps(flags0)];
  steps = replaceStep(steps, 'snapshot', { name: 'snapshot', run: (c) => openPooled(c, flags0) });
  const logStep = steps.find((s) => s.name === 'log')!;
  steps = replaceStep(steps, 'claim-name', { name: 'pool-dir', run: reserveRunDir });
  steps = replaceStep(steps, 'log', null);
  steps = replaceStep(steps, 'network', { name: 'pool-network', run: (c) => poolNetwork(c, job.network, c.state.id) });
  steps = replaceStep(steps, 'network-connect', null);
  steps = replaceStep(steps, 'network-ready', null);
  steps = replaceStep(steps, 'restore', { name: 'restore', run: restoreVm });
  const agentAt = steps.findIndex((s) => s.name === 'agent');
  // The host end of the network is made beside vm.restored, and is there before the clone is reported started.
  return runBeside([
    ...steps.slice(0, agentAt + 1),
    { name: 'hello', run: helloNow },
    { name: 'warm-exec', run: warmExec },
    { name: 'handout', run: (c) => waitForHandout(c, job, link) },
    { name: 'claim-name', run: claimPooled },
    logStep,
    { name: 'network', run: handOutNetwork },
    // The plain step (the clone list's is already wrapped to run beside the restore).
    { name: 'network-connect', run: connectNetwork },
    ...steps.slice(agentAt + 1),
  ], 'network-connect', 'control-socket', 'network-ready', logBeside);
}

/** Runs a pool member until its VM ends; tells the server when it is ready and when it was handed out. */
export async function runPoolMember(job: PoolJob, link: MemberLink, env: RunEnv): Promise<number> {
  const body = async (c: Ctx) => {
    link.send({ started: { name: c.opts.name, runDir: c.state.runDir } });
    // An --exec clone is ended at once when its command is done: its disk is throwaway.
    return Promise.race([superviseContainer(c), link.ended.then(() => 0)]);
  };
  // A -d clone's output and diagnostics go to its log, as a detached supervisor's do; an
  // --exec clone's log gets the container's lines from the supervision already, and its
  // diagnostics stay with the server (which logs them with --log-level debug).
  let detached = false;
  void link.handout.then((f) => (detached = f.raw.detach ?? false));
  const memberEnv: RunEnv = { ...env, detached: (log) => (detached ? env.detached?.(log) : undefined) };
  return runVm(poolMemberSteps(job, link), { name: 'pool' } as RunOptions, memberEnv, body);
}

/** The snapshot step, before the member has a name of its own. */
async function openPooled(c: Ctx, flags: CloneFlags): Promise<void> {
  c.opts = { name: flags.name } as RunOptions;
  await openSnapshot(c, flags);
}

/**
 * A run directory named like a VM id (the reaper's rule: it goes when this process is
 * gone), and the jail identity the VMM starts in, as a cold VM's claim would make them.
 */
async function reserveRunDir(c: Ctx): Promise<void> {
  const id = `${randomBytes(3).toString('hex')}-${process.pid}-${processStartTime(process.pid)!}`;
  c.reservedRunDir = join(c.env.layout.vmRuntime, id);
  const jail = await claimJail(c);
  // Only what the steps before the claim read; the claim writes the whole state.
  c.state = { id, runDir: c.reservedRunDir, jail } as VmState;
}

async function helloNow(c: Ctx): Promise<void> {
  try {
    await Promise.race([c.hello, interrupted(c.env.interrupt)]);
  } catch (e) {
    throw await agentFailure(c, e, { awaited: 'the restored agent\'s hello', before: 'its restored agent answered' });
  }
}

/** How long the rehearsal exec may take before the member is ready without it. */
const WARM_EXEC_MS = 30_000;

/**
 * A rehearsal before the member is ready: `true` in its container, through a control
 * socket of its own as a client's exec would go. Under TCG a restored guest translates
 * every code path afresh, and its first exec pays for the agent's exec path, the
 * spawner's namespace entry and the guest kernel's fork and exec; paid here, while the
 * pool fills, it is not paid by the exec after the hand-out. It reads nothing that the
 * hand-out gives (name, clock, randomness) and leaves nothing in the container. A
 * failure costs only the rehearsal.
 */
async function warmExec(c: Ctx): Promise<void> {
  const t0 = performance.now();
  const discard = () => new Writable({ write: (_chunk, _enc, done) => done() });
  const quiet = new AbortController();
  let server: UnixServer | undefined;
  try {
    server = await startControlServer(c.state.runDir, c.conn, c.env.log);
    const code = await Promise.race([
      execInVm(controlSocketPath(c.state.runDir), 'a pooled clone', { target: 'container', command: ['true'], env: {}, workdir: undefined, user: undefined, interactive: false, tty: false },
        { stdin: Readable.from([]), stdout: discard(), stderr: discard(), interrupt: quiet.signal }),
      deadline(WARM_EXEC_MS).then(() => 'timed out'),
      interrupted(c.env.interrupt),
    ]);
    c.env.log.debug({ ms: Math.round(performance.now() - t0), result: code }, 'pool: rehearsal exec');
  } catch (e) {
    if (c.env.interrupt.aborted) throw e;
    c.env.log.debug({ err: e }, 'pool: the rehearsal exec failed; ready without it');
  } finally {
    // An exec still running (timed out, or interrupted) is killed with the session.
    quiet.abort('SIGKILL');
    await server?.close();
  }
}

async function waitForHandout(c: Ctx, job: PoolJob, link: MemberLink): Promise<void> {
  link.send({ ready: true });
  const flags = await Promise.race([link.handout, interrupted(c.env.interrupt)]);
  const opts = cloneRunOptions(c.clone!.meta, flags);
  if (opts.network !== job.network) {
    throw errors.invalidOption('--network', opts.network, `the pool's clones have --network ${job.network}`, 'Leave --network out, or start a clone without the pool');
  }
  // With --exec, -i and -t are the exec's (its requester runs it), not the container's:
  // the container keeps the stdio it was started with.
  c.opts = flags.exec ? { ...opts, interactive: false, tty: false } : opts;
}

/** The name, network index and state file, with the VMM that already runs. */
async function claimPooled(c: Ctx): Promise<void> {
  await claimName(c);
  c.state = { ...c.state, vmmPid: c.vm.pid, accel: c.accel, ...(c.vm.kvm ? { kvm: c.vm.kvm } : {}) };
  await c.store.update(c.state);
}
