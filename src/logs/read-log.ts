import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import type { TextSink } from '../vm/output.js';
import { setTimeout as delay } from 'node:timers/promises';
import { rotatedPath } from './vm-log.js';

/** The line a supervisor writes when its container ended: `[ctr:exit] CODE`. `fcvm logs` never prints it. */
export const EXIT_MARK = '[ctr:exit] ';

/** A log line's time (logStamp in vm-log.ts); logs of older fcvm versions have none. */
const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z /;

/** A log line's time, if it has one (in ms, and its fraction's nine digits), and the rest of it. Pure. */
export function splitStamp(line: string): { at?: { ms: number; nanos: string }; rest: string } {
  const m = STAMP.exec(line);
  if (!m) return { rest: line };
  return { at: { ms: Date.parse(`${m[1]}Z`) + Number(m[2]) / 1e6, nanos: m[2]! }, rest: line.slice(m[0].length) };
}

/**
 * A time as podman 4's logs -t prints it: Go's RFC3339Nano in UTC, whatever the zone
 * (trailing zeros of the fraction dropped). Pure.
 */
export function podmanLogTime(at: { ms: number; nanos: string }): string {
  const whole = new Date(Math.floor(at.ms / 1000) * 1000).toISOString().slice(0, 19);
  const fraction = at.nanos.replace(/0+$/, '');
  return `${whole}${fraction ? `.${fraction}` : ''}Z`;
}

const isExitMark = (line: string) => splitStamp(line).rest.startsWith(EXIT_MARK);

/** `text` without its exit mark lines. Lines end at "\n" only, as the log's writer ends them (a "\r" is container output). Pure. */
function withoutExitMarks(text: string): string {
  return text.split('\n').filter((l) => !isExitMark(l)).join('\n');
}

/**
 * Where a log line goes: container output to stdout or stderr without its prefix, as
 * `podman logs` prints it; the supervisor's own lines ("fcvm: ..." errors, warnings)
 * to stderr as they are; the exit mark nowhere. Pure.
 */
export function routeLine(line: string): { stream: 'stdout' | 'stderr'; text: string } | undefined {
  if (line.startsWith(EXIT_MARK)) return undefined;
  if (line.startsWith('[ctr:out] ')) return { stream: 'stdout', text: line.slice(10) };
  if (line.startsWith('[ctr:err] ')) return { stream: 'stderr', text: line.slice(10) };
  return { stream: 'stderr', text: line };
}

/** The last `n` whole lines of `text` (which ends with a newline, or has a partial last line). Pure. */
export function lastLines(text: string, n: number): string {
  if (n <= 0) return '';
  const end = text.endsWith('\n') ? text.length - 1 : text.length;
  let i = end;
  for (let seen = 0; i > 0; i--) {
    if (text[i - 1] === '\n' && ++seen === n) break;
  }
  return text.slice(i);
}

/** Splits bytes into complete lines, holding a partial last line until its newline comes. */
class LineSplitter {
  private rest = Buffer.alloc(0);
  constructor(private readonly emit: (line: string) => void) {}
  push(chunk: Buffer): void {
    let buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
      this.emit(buf.subarray(0, nl).toString('utf8'));
      buf = buf.subarray(nl + 1);
    }
    this.rest = Buffer.from(buf);
  }
  flush(): void {
    if (this.rest.length) this.emit(this.rest.toString('utf8'));
    this.rest = Buffer.alloc(0);
  }
}

export interface ShowLogOptions {
  /** Only the last N lines (of the log so far). */
  tail: number | undefined;
  /** Only lines written at or after, or at or before, these times (ms since the epoch); a line without a time is left out then. */
  since?: number;
  until?: number;
  /** Each line after its time, as podman logs -t prints it. */
  timestamps?: boolean;
  /** Go on printing what is written, until `alive` turns false (or `interrupt`). */
  follow: boolean;
  /** Whether the VM that writes the log still runs. */
  alive: () => boolean;
  interrupt: AbortSignal;
}

/** Prints a VM's log (its rotated file first), and with `follow`, what comes, across rotations. */
export async function showLog(path: string, opts: ShowLogOptions, out: { stdout: TextSink; stderr: TextSink }): Promise<void> {
  const lines = new LineSplitter((line) => {
    const { at, rest } = splitStamp(line);
    if (opts.since !== undefined && (!at || at.ms < opts.since)) return;
    if (opts.until !== undefined && (!at || at.ms > opts.until)) return;
    const r = routeLine(rest);
    if (r) (r.stream === 'stdout' ? out.stdout : out.stderr).write(`${opts.timestamps && at ? `${podmanLogTime(at)} ` : ''}${r.text}\n`);
  });
  let fd = openSync(path, 'r');
  let ino = fstatSync(fd).ino;
  let pos = 0;
  const readNew = (): number => {
    const buf = Buffer.alloc(64 * 1024);
    let total = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) return total;
      pos += n;
      total += n;
      lines.push(Buffer.from(buf.subarray(0, n)));
    }
  };
  try {
    const rotated = rotatedPath(path);
    if (opts.tail !== undefined) {
      const head = existsSync(rotated) ? readFileSync(rotated) : Buffer.alloc(0);
      const size = fstatSync(fd).size;
      const now = Buffer.alloc(size);
      readSync(fd, now, 0, size, 0);
      pos = size;
      lines.push(Buffer.from(lastLines(withoutExitMarks(Buffer.concat([head, now]).toString('utf8')), opts.tail)));
    } else {
      if (existsSync(rotated)) lines.push(readFileSync(rotated));
      readNew();
    }
    while (opts.follow && !opts.interrupt.aborted) {
      const alive = opts.alive();
      readNew();
      // Rotated: what is left of the old file, then the new one from its start.
      const now = statOrUndefined(path);
      if (now && now.ino !== ino) {
        readNew();
        closeSync(fd);
        fd = openSync(path, 'r');
        ino = fstatSync(fd).ino;
        pos = 0;
        continue;
      }
      if (!alive || (opts.until !== undefined && Date.now() > opts.until)) break;
      // Aborting ends the wait; each wait's listener goes with it (one per pass piled up).
      await delay(200, undefined, { signal: opts.interrupt }).catch(() => {});
    }
    lines.flush();
  } finally {
    closeSync(fd);
  }
}

function statOrUndefined(path: string): { ino: number } | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** The container's exit code that a VM's log recorded when it ended, if it did. */
export function exitCodeInLog(path: string): number | undefined {
  let text: string;
  try {
    const fd = openSync(path, 'r');
    try {
      // The mark is among the last lines: only the supervisor's last words follow it.
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(size, 64 * 1024));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      text = buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const last = text.split('\n').map((l) => splitStamp(l).rest).filter((l) => l.startsWith(EXIT_MARK)).pop()?.slice(EXIT_MARK.length);
  return last !== undefined && /^-?\d{1,10}$/.test(last) ? Number(last) : undefined;
}
