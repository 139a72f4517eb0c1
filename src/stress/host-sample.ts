import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/** What the live line shows of the host: load, memory in use, and a process's CPU. */
export interface HostSample {
  load1: number;
  memUsedBytes: number;
}

export function sampleHost(): HostSample {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const kib = (k: string) => Number(info.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
  return { load1: loadavg()[0]!, memUsedBytes: (kib('MemTotal') - kib('MemAvailable')) * 1024 };
}

/** CPU time (user + system) of a process in clock ticks, or undefined if it is gone. */
export function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** Proportional set size of a process in bytes (shared pages split among their users). */
export function pssBytes(pid: number): number | undefined {
  try {
    const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+) kB/m);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** A process's CPU use between two calls, in percent of one core. */
export function cpuMeter(pid: number, ticksPerSecond = 100): () => number | undefined {
  let last = { t: performance.now(), ticks: cpuTicks(pid) };
  return () => {
    const now = { t: performance.now(), ticks: cpuTicks(pid) };
    const d = now.ticks !== undefined && last.ticks !== undefined ? ((now.ticks - last.ticks) / ticksPerSecond) / ((now.t - last.t) / 1000) : undefined;
    last = now;
    return d === undefined ? undefined : Math.round(d * 100);
  };
}
