import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isSameProcessAlive } from '../util/proc.js';

/**
 * Network indexes taken on this host, whatever fcvm base directory took them: each
 * index decides a host-side /30 (10.200.x.y), a veth and a loopback address, and two
 * installs with their own base directories (and so their own allocation locks) must
 * never get the same one. An index is a file here, made with O_EXCL and holding its
 * supervisor's PID and start time; one whose supervisor is gone is taken over. Only
 * where this directory can be written (root); elsewhere each base directory's own
 * allocation is all there is.
 */
export const HOST_INDEX_DIR = '/run/fcvm/net-index';

/** Takes `index` for the supervisor `pid` (started at `start`); false if a live one has it. */
export function reserveHostIndex(index: number, pid: number, start: number, dir = HOST_INDEX_DIR): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch {
    return true;
  }
  const file = join(dir, String(index));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, `${pid} ${start}\n`);
      closeSync(fd);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return true;
      const [p, s] = readOwner(file);
      if (p !== undefined && s !== undefined && isSameProcessAlive(p, s)) return p === pid && s === start;
      rmSync(file, { force: true });
    }
  }
  return false;
}

/** Gives `index` back, if `pid` still holds it. */
export function releaseHostIndex(index: number, pid: number, start: number, dir = HOST_INDEX_DIR): void {
  const file = join(dir, String(index));
  const [p, s] = readOwner(file);
  if (p === pid && s === start) rmSync(file, { force: true });
}

function readOwner(file: string): [number | undefined, number | undefined] {
  try {
    const [p, s] = readFileSync(file, 'utf8').trim().split(' ').map(Number);
    return [Number.isInteger(p) ? p : undefined, Number.isInteger(s) ? s : undefined];
  } catch {
    return [undefined, undefined];
  }
}

/** Removes the indexes whose supervisors are gone (a SIGKILL leaves its file); returns them. */
export function reapHostIndexes(dir = HOST_INDEX_DIR): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const reaped: number[] = [];
  for (const n of names.filter((x) => /^\d+$/.test(x))) {
    const file = join(dir, n);
    const [p, s] = readOwner(file);
    // Unreadable or half-written files are left: their writer may be mid-write.
    if (p === undefined || s === undefined || isSameProcessAlive(p, s)) continue;
    rmSync(file, { force: true });
    reaped.push(Number(n));
  }
  return reaped;
}
