import { errors } from '../errors/catalogue.js';
import { exitCodeInLog } from '../logs/read-log.js';
import { logsOf } from '../logs/vm-log.js';
import { RemoteError } from '../protocol/connection.js';
import type { Layout } from '../setup/layout.js';
import { listVms } from '../state/list.js';
import { isOwnerAlive, StateStore } from '../state/store.js';
import type { VmState } from '../state/vm-state.js';
import type { Logger } from '../util/log.js';
import { sleep, waitGone } from '../util/proc.js';
import { manageRequest } from '../vm/manage-client.js';
import { MANAGE } from '../vm/manage-server.js';
import { endedVms } from '../state/ended.js';
import { firstFailure } from './settle.js';

/** The longest a timer can wait (about 24 days): `fcvm wait` has no limit of its own. */
const FOREVER_MS = 2 ** 31 - 1;
/** How long a supervisor that answered may take to tear its VM down before wait returns anyway. */
const TEARDOWN_MS = 60_000;

/**
 * `fcvm wait`, as podman wait: the exit code of each VM's container, once it ended. A
 * running VM's supervisor answers when its container ends, and wait returns once the
 * supervisor has torn the VM down (so `fcvm wait X && fcvm rm X` finds it ended); a VM
 * that ended answers from its kept log (not with --rm). All are waited for;
 * the codes are reported in the order of the names, then the first failure is thrown.
 */
export async function waitVms(layout: Layout, log: Logger, names: string[], report: (name: string, code: number) => void): Promise<void> {
  await listVms(layout, log);
  const store = new StateStore(layout.vmState);
  const results = await Promise.allSettled(names.map(async (name) => {
    const loaded = await store.load(name);
    if (loaded.ok && isOwnerAlive(loaded.state)) {
      const code = await askSupervisor(loaded.state, log);
      if (code !== undefined) return code;
    }
    const logs = await logsOf(layout.logs, name);
    for (const l of logs) {
      const code = exitCodeInLog(l.path);
      if (code !== undefined) return code;
    }
    // A VM whose supervisor was killed has no exit in its log; once reaped, its record says 137.
    if (loaded.ok) await listVms(layout, log);
    const ended = (await endedVms(layout.logs, name))[0]?.exitCode;
    if (ended !== undefined) return ended;
    throw loaded.ok || logs.length > 0 ? errors.exitUnknown(name) : errors.notRunningOrKept(name);
  }));
  for (const [i, r] of results.entries()) if (r.status === 'fulfilled') report(names[i]!, r.value);
  firstFailure(results);
}

/**
 * The container's exit code from its running supervisor, once the supervisor is gone
 * (or TEARDOWN_MS later), or undefined if it ended without one. Its management socket
 * opens once the VM booted: until then (no socket yet), it is asked again.
 */
async function askSupervisor(s: VmState, log: Logger): Promise<number | undefined> {
  for (;;) {
    try {
      const answer = await manageRequest(s.runDir, MANAGE.wait, {}, FOREVER_MS);
      const code = (answer as { exitCode?: unknown }).exitCode;
      await waitGone(s.pid, s.pidStartTime, TEARDOWN_MS);
      return typeof code === 'number' ? code : undefined;
    } catch (e) {
      if (e instanceof RemoteError && e.code === 'UNSUPPORTED') throw errors.waitUnsupported(s.name);
      const notYet = ['ENOENT', 'ECONNREFUSED'].includes((e as NodeJS.ErrnoException).code ?? '');
      if (!notYet || !isOwnerAlive(s)) {
        log.debug({ err: e, vm: s.name }, 'the supervisor ended without answering the wait; reading its log');
        // Its connection may close before its teardown has kept the log's last line and the record.
        await waitGone(s.pid, s.pidStartTime, TEARDOWN_MS);
        return undefined;
      }
      await sleep(200);
    }
  }
}
