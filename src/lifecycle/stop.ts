import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { logOwnerAlive, logsOf } from '../logs/vm-log.js';
import type { Layout } from '../setup/layout.js';
import { reapLeftovers } from '../state/reaper.js';
import type { VmState } from '../state/vm-state.js';
import type { Logger } from '../util/log.js';
import { isSameProcessAlive, sleep } from '../util/proc.js';
import { signalProcess } from '../util/signal-process.js';
import { MANAGE } from '../vm/manage-server.js';
import { manageRequest } from '../vm/manage-client.js';
import { findVmState, type VmRef } from './find.js';
import { listVms } from '../state/list.js';
import type { StopOptions } from '../options/lifecycle-options.js';
import { firstFailure } from './settle.js';

/** How long past the grace period a supervisor may take to wind down (VM power-off, cleanup). */
const WIND_DOWN_MS = 30_000;
/** The grace period when neither -t nor the VM's own --stop-timeout is known. */
const DEFAULT_GRACE_S = 10;

/**
 * `fcvm stop`: what SIGTERM to the supervisor does (the container gets SIGTERM, then
 * SIGKILL after the grace period, and the VM is torn down), waiting until all of it is
 * gone. The supervisor is asked over its management socket (which carries -t); before
 * that socket exists, or if it does not answer, it gets SIGTERM through a pidfd, so a
 * reused PID is never hit. A supervisor that outlives the grace by WIND_DOWN_MS is
 * killed the same way, and what it left is reaped.
 */
export async function stopVm(layout: Layout, log: Logger, ref: VmRef, graceSeconds: number | undefined): Promise<string> {
  const s = await findVmState(layout, log, ref).catch(async (e: unknown) => {
    // As podman stop of a container that has exited: done, if one of that name ended (its log is kept).
    if ('name' in ref && isFcvmError(e) && e.code === 'VM_NOT_FOUND' && (await logsOf(layout.logs, ref.name)).some((l) => !logOwnerAlive(l.id))) return undefined;
    throw e;
  });
  if (!s) return (ref as { name: string }).name;
  const asked = await manageRequest(s.runDir, MANAGE.stop, graceSeconds === undefined ? {} : { graceSeconds }, 5000).then(() => true, (e) => {
    log.debug({ err: e, vm: s.name }, 'the management socket did not take the stop; sending SIGTERM');
    return false;
  });
  if (!asked) await signalProcess(s.pid, s.pidStartTime, 'SIGTERM');
  const limit = ((graceSeconds ?? s.plan?.stopTimeout ?? DEFAULT_GRACE_S) * 1000) + WIND_DOWN_MS;
  if (!(await gone(s, limit))) {
    log.warn(`VM "${s.name}": its supervisor (pid ${s.pid}) did not end ${Math.round(limit / 1000)} s after the stop; killing it`);
    await signalProcess(s.pid, s.pidStartTime, 'SIGKILL');
    if (!(await gone(s, 5000))) throw errors.stopFailed(s.name, `its supervisor (pid ${s.pid}) survived SIGKILL`);
  }
  // A supervisor that was killed leaves its VM's files, network and state: take them now.
  await reapLeftovers(layout, log);
  return s.name;
}

/** `fcvm stop`: the VMs named (or all), at once; each name is reported as it is gone. The first failure is thrown after the others ended. */
export async function stopVms(layout: Layout, log: Logger, opts: StopOptions, stopped: (name: string) => void): Promise<void> {
  const refs: VmRef[] = opts.refs === 'all' ? (await listVms(layout, log)).map((v) => ({ name: v.name })) : opts.refs;
  const results = await Promise.allSettled(refs.map(async (r) => stopped(await stopVm(layout, log, r, opts.graceSeconds))));
  firstFailure(results);
}

async function gone(s: VmState, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (isSameProcessAlive(s.pid, s.pidStartTime)) {
    if (Date.now() > end) return false;
    await sleep(100);
  }
  return true;
}
