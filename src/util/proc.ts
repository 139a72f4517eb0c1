import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

/** How a process ended: its exit code, or the signal that killed it. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The start time of a process, in clock ticks since boot (field 22 of /proc/PID/stat),
 * or undefined if the process does not exist. Together with the PID it identifies a
 * process across PID reuse.
 */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = Number(rest[19]);
  return Number.isFinite(v) ? v : undefined;
}

/** True if `pid` is alive and is the same process that started at `startTime`. */
export function isSameProcessAlive(pid: number, startTime: number): boolean {
  const now = processStartTime(pid);
  if (now === undefined || now !== startTime) return false;
  // A zombie is dead for our purposes.
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return state.slice(state.lastIndexOf(')') + 2, state.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits until the process `pid` that started at `startTime` is gone (or a zombie), at most `ms`. */
export async function waitGone(pid: number, startTime: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (isSameProcessAlive(pid, startTime)) {
    if (Date.now() > until) return false;
    await sleep(20);
  }
  return true;
}

/** The first child of `pid` (its only one, for a process that forks once), or undefined. */
export function firstChild(pid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

/** A process's name as the kernel keeps it (its program's, cut to 15 bytes), or undefined if it is gone. */
export function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trimEnd();
  } catch {
    return undefined;
  }
}

/** Seconds since the system booted. */
export function uptimeSeconds(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Resolves after `ms` without keeping the process alive: for the losing side of a
 * Promise.race, so a finished race does not hold the event loop open until it fires.
 */
export function deadline(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** bubblewrap's init and a shell exit 128+N when their command died of signal N: report that as the signal. */
export function signalFromShellCode<T extends ProcessExit>(x: T): T {
  if (x.signal || x.code === null || x.code <= 128) return x;
  const name = (Object.keys(constants.signals) as NodeJS.Signals[]).find((s) => constants.signals[s] === x.code! - 128);
  return name ? { ...x, code: null, signal: name } : x;
}
