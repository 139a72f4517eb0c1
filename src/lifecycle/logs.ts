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
 * `fcvm logs NAME...`: the log of the running VM of each name, or else of the last one
 * (a VM's log is kept for a while after it ends, unless it ran with --rm). With `follow`,
 * it goes on until those VMs end. As podman's, with more than one name each line
 * starts with its VM's name (fcvm's names are what podman's IDs are to it); every
 * name is looked up before anything is printed.
 */
export async function vmLogs(layout: Layout, log: Logger, opts: LogsOptions, out: { stdout: TextSink; stderr: TextSink }, interrupt: AbortSignal): Promise<void> {
  await listVms(layout, log);
  const found: FoundLog[] = [];
  for (const name of opts.names) found.push(await findLog(layout, name));
  const multi = found.length > 1;
  const show = (f: FoundLog) => showVmLog(layout, log, f, opts, multi ? prefixed(out, `${f.name} `) : out, interrupt);
  if (opts.follow) await Promise.all(found.map(show));
  else for (const f of found) await show(f);
}

interface FoundLog {
  name: string;
  path: string;
  /** Whether the VM that writes it still runs. */
  alive: () => boolean;
}

async function findLog(layout: Layout, name: string): Promise<FoundLog> {
  const loaded = await new StateStore(layout.vmState).load(name);
  if (loaded.ok && isOwnerAlive(loaded.state) && loaded.state.log) {
    const s = loaded.state;
    return { name, path: s.log!.path, alive: () => isSameProcessAlive(s.pid, s.pidStartTime) };
  }
  const path = (await logsOf(layout.logs, name))[0]?.path;
  if (!path) throw errors.logNotFound(name);
  return { name, path, alive: () => false };
}

async function showVmLog(layout: Layout, log: Logger, f: FoundLog, opts: LogsOptions, out: { stdout: TextSink; stderr: TextSink }, interrupt: AbortSignal): Promise<void> {
  try {
    await showLog(f.path, { ...opts, alive: f.alive, interrupt }, out);
    // A followed VM whose supervisor was killed: reaped now, not by some later command.
    if (opts.follow && !interrupt.aborted && !f.alive()) await listVms(layout, log);
  } catch (e) {
    // It ended (and took its log) between the look-up and the read.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw errors.logNotFound(f.name);
    throw e;
  }
}

/** Sinks that start each line (showLog writes whole lines) with `prefix`. */
function prefixed(out: { stdout: TextSink; stderr: TextSink }, prefix: string): { stdout: TextSink; stderr: TextSink } {
  return { stdout: { write: (line) => out.stdout.write(prefix + line) }, stderr: { write: (line) => out.stderr.write(prefix + line) } };
}
