import { errors } from '../errors/catalogue.js';
import { logsOf, removeLog } from '../logs/vm-log.js';
import type { Layout } from '../setup/layout.js';
import { listVms } from '../state/list.js';
import type { Logger } from '../util/log.js';
import { stopVm } from './stop.js';

export interface RemoveOptions {
  names: string[];
  /** Stop a running VM first (as podman rm --force). */
  force: boolean;
  /** A name with nothing to remove is not an error (podman rm --ignore). */
  ignore: boolean;
  /** With force: the grace period before SIGKILL (default: the VM's --stop-timeout). */
  graceSeconds: number | undefined;
}

/**
 * `fcvm rm`, as podman rm: a VM that ended leaves only its kept log, which goes; a
 * running one is refused unless forced, and then stopped first. Each name is reported
 * once it is gone; the first failure is thrown after the others were tried.
 */
export async function removeVms(layout: Layout, log: Logger, opts: RemoveOptions, removed: (name: string) => void): Promise<void> {
  const running = new Set((await listVms(layout, log)).map((v) => v.name));
  const results = await Promise.allSettled(opts.names.map(async (name) => {
    if (running.has(name)) {
      if (!opts.force) throw errors.vmRunning(name);
      await stopVm(layout, log, { name }, opts.graceSeconds);
    }
    const logs = await logsOf(layout.logs, name);
    if (!running.has(name) && logs.length === 0) {
      if (opts.ignore) return;
      throw errors.nothingToRemove(name);
    }
    for (const l of logs) await removeLog(l.path);
    removed(name);
  }));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
