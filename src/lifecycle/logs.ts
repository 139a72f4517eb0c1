import { errors } from '../errors/catalogue.js';
import type { LogsOptions } from '../options/lifecycle-options.js';
import { logsOf } from '../logs/vm-log.js';
import { showLog } from '../logs/read-log.js';
import type { Layout } from '../setup/layout.js';
import { listVms } from '../state/list.js';
import { isOwnerAlive, StateStore } from '../state/store.js';
import type { Logger } from '../util/log.js';
import { isSameProcessAlive } from '../util/proc.js';
import type { TextSink } from '../vm/output.js';

/**
 * `fcvm logs NAME`: the log of the running VM of that name, or else of the last one
 * (a VM's log is kept for a while after it ends, unless it ran with --rm). With `follow`, it goes on
 * until that VM ends.
 */
export async function vmLogs(layout: Layout, log: Logger, name: string, opts: Omit<LogsOptions, 'name'>, out: { stdout: TextSink; stderr: TextSink }, interrupt: AbortSignal): Promise<void> {
  await listVms(layout, log);
  const loaded = await new StateStore(layout.vmState).load(name);
  let path: string | undefined;
  let alive = () => false;
  if (loaded.ok && isOwnerAlive(loaded.state) && loaded.state.log) {
    const s = loaded.state;
    path = s.log!.path;
    alive = () => isSameProcessAlive(s.pid, s.pidStartTime);
  } else {
    path = (await logsOf(layout.logs, name))[0]?.path;
  }
  if (!path) throw errors.logNotFound(name);
  try {
    await showLog(path, { ...opts, alive, interrupt }, out);
    // A followed VM whose supervisor was killed: reaped now, not by some later command.
    if (opts.follow && !interrupt.aborted && !alive()) await listVms(layout, log);
  } catch (e) {
    // It ended (and took its log) between the look-up and the read.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw errors.logNotFound(name);
    throw e;
  }
}
