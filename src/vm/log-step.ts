import { pruneEndedLogs, removeLog, RotatingLog } from '../logs/vm-log.js';
import { writeEndedRecord } from '../state/ended.js';
import { exitCodeForSignal, type Ctx } from './run-context.js';

/**
 * The `log` boot step: opens the VM's own log, right after its name is claimed. Earlier
 * logs of the same name go (a new VM replaces them). A detached supervisor sends its
 * output there from now on. Without --rm, a `podman run` whose container ran (or any
 * detached run) is kept as podman keeps an exited container: its log and a record of
 * its last state stay, for `logs`, `wait`, `ps -a` and `inspect`, until `rm`.
 */
export async function openVmLog(c: Ctx): Promise<void> {
  const rec = c.state.log;
  if (!rec) return;
  await pruneEndedLogs(c.env.layout.logs, { name: c.state.name });
  const log = new RotatingLog(rec.path);
  c.vmLog = log;
  c.cleanup.push('keep or remove the VM\'s log', async () => {
    // A detached VM that failed before its container ended is kept as exited 125, fcvm's
    // own failure. Its log stays open: a detached supervisor's final error goes there.
    if (rec.keep && (c.state.detached || c.state.exitCode !== undefined)) {
      // Stopped (`fcvm stop`, a signal) before its container ran: the signal's code, as
      // podman's for a container it stopped, and the log says why.
      const stoppedBy = c.env.interrupt.aborted && c.state.exitCode === undefined ? String(c.env.interrupt.reason) : undefined;
      if (!stoppedBy) return writeEndedRecord(c.state, undefined, 125);
      log.write(`fcvm: ${stoppedBy}: stopped while the VM was starting; its container did not run\n`);
      return writeEndedRecord(c.state, `stopped by ${stoppedBy} while starting`, exitCodeForSignal(stoppedBy));
    }
    // A foreground run that never ran its container said why on the terminal.
    log.close();
    await removeLog(rec.path);
  });
  c.env.detached?.(log);
}
