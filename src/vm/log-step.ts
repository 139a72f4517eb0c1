import { pruneEndedLogs, removeLog, RotatingLog } from '../logs/vm-log.js';
import type { Ctx } from './run-context.js';

/**
 * The `log` boot step: opens the VM's own log, right after its name is claimed. Earlier
 * logs of the same name go (a new VM replaces them). A detached supervisor sends its
 * output there from now on. The log outlives the run only when it ran detached
 * without --rm, so "fcvm logs" can tell why it ended; its last lines are written at exit.
 */
export async function openVmLog(c: Ctx): Promise<void> {
  const rec = c.state.log;
  if (!rec) return;
  await pruneEndedLogs(c.env.layout.logs, { name: c.state.name });
  const log = new RotatingLog(rec.path);
  c.vmLog = log;
  if (!rec.keep) c.cleanup.push('remove the VM\'s log', () => (log.close(), removeLog(rec.path)));
  c.env.detached?.(log);
}
