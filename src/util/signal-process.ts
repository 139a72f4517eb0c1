import { closeSync } from 'node:fs';
import { constants } from 'node:os';
import { pidfdOps } from '../os/pidfd.js';
import { processStartTime } from './proc.js';

/**
 * Sends `signal` to `pid` only if it is still the process that started at `startTime`.
 * A pidfd is taken first and the start time checked after, so a PID reused between the
 * check and the signal cannot be hit. Returns false if that process is gone.
 */
export async function signalProcess(pid: number, startTime: number, signal: NodeJS.Signals): Promise<boolean> {
  const ops = pidfdOps();
  let fd: number;
  try {
    fd = ops.open(pid, false);
  } catch {
    return false;
  }
  try {
    if (processStartTime(pid) !== startTime) return false;
    return ops.signal(fd, constants.signals[signal]) === 0;
  } finally {
    closeSync(fd);
  }
}
