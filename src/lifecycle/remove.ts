import { errors } from '../errors/catalogue.js';
import { logOwnerAlive, logsOf, removeLog } from '../logs/vm-log.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { processStartTime, waitGone } from '../util/proc.js';
import type { Layout } from '../setup/layout.js';
import { listVms } from '../state/list.js';
import type { Logger } from '../util/log.js';
import { stopVm } from './stop.js';
import type { RemoveOptions } from '../options/lifecycle-options.js';
import { firstFailure } from './settle.js';
import { endedVms } from '../state/ended.js';

/** How long rm waits for a VM whose container ended to be torn down. */
const TEARDOWN_MS = 60_000;

/**
 * `fcvm rm`, as podman rm: a VM that ended leaves only its kept log and record, which go; a
 * running one is refused unless forced, and then stopped first. Each name is reported
 * once it is gone; the first failure is thrown after the others were tried.
 */
export async function removeVms(layout: Layout, log: Logger, opts: RemoveOptions, removed: (name: string) => void): Promise<void> {
  const listed = new Map((await listVms(layout, log)).map((v) => [v.name, v]));
  // --all: the kept ones and the running ones, which (as podman rm -a) are refused without --force after the others went.
  const names = !opts.all ? opts.names : [...new Set([...(await endedVms(layout.logs)).map((s) => s.name), ...listed.keys()])].sort();
  const results = await Promise.allSettled(names.map(async (name) => {
    const vm = listed.get(name);
    // A container that ended while its supervisor tears the VM down (`fcvm wait X && fcvm rm X`) has ended.
    const ending = vm?.status === 'stopped' && (await waitGone(vm.pid, processStartTime(vm.pid) ?? -1, TEARDOWN_MS));
    if (vm && !ending) {
      if (!opts.force) throw errors.vmRunning(name);
      // Gone between the listing and the stop: then there is only its log to take.
      await stopVm(layout, log, { name }, opts.graceSeconds).catch((e: unknown) => {
        if (!isFcvmError(e) || e.code !== 'VM_NOT_FOUND') throw e;
      });
    }
    // Never the log of a VM of this name that started meanwhile.
    const logs = (await logsOf(layout.logs, name)).filter((l) => !logOwnerAlive(l.id));
    if (!vm && logs.length === 0) {
      // podman rm -f, as rm --ignore, is quiet about a name with nothing to remove.
      if (opts.ignore || opts.force) return;
      throw errors.nothingToRemove(name);
    }
    for (const l of logs) await removeLog(l.path);
    removed(name);
  }));
  firstFailure(results);
}
