import { processStartTime, isSameProcessAlive } from './proc.js';

/**
 * "PID-STARTTIME" of this process: put in the names of temporary files and directories
 * so that a reaper can tell whether their writer is still alive.
 */
export function ownerTag(pid = process.pid): string {
  return `${pid}-${processStartTime(pid) ?? 0}`;
}

/** True if the owner named in `name` (which contains "PID-STARTTIME") is alive. Pure apart from /proc. */
export function ownerAlive(name: string): boolean {
  const m = name.match(/(\d+)-(\d+)(?!.*\d+-\d+)/);
  if (!m) return false;
  return isSameProcessAlive(Number(m[1]), Number(m[2]));
}
