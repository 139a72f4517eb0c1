import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { TextSink } from '../vm/output.js';
import { isSameProcessAlive } from '../util/proc.js';

/** True while the supervisor that a VM id (HEX-PID-START) names is alive. */
export function logOwnerAlive(id: string): boolean {
  const [, pid, start] = id.split('-');
  return isSameProcessAlive(Number(pid), Number(start));
}

/**
 * A VM's log: container output as "[ctr:out] " / "[ctr:err] " lines, and its
 * supervisor's messages. Named after the VM and its id, so a VM never touches the log
 * of an earlier one of the same name.
 */
export const logPath = (logsDir: string, name: string, id: string) => join(logsDir, `${name}.${id}.log`);

/** The VM name and id in a log's file name, or undefined. Pure. */
export function parseLogName(file: string): { name: string; id: string } | undefined {
  const m = file.match(/^(.+)\.([0-9a-f]+-\d+-\d+)\.log$/);
  return m ? { name: m[1]!, id: m[2]! } : undefined;
}
/** The VM name and id in an ended VM's record's file name (NAME.ID.json), or undefined. Pure. */
export function parseRecordName(file: string): { name: string; id: string } | undefined {
  return file.endsWith('.json') ? parseLogName(`${file.slice(0, -5)}.log`) : undefined;
}

/** Where an ended VM's record (src/state/ended.ts) is kept: beside its log. Pure. */
export const recordPath = (logPath: string) => logPath.replace(/\.log$/, '.json');

/** The previous file, after one rotation. */
export const rotatedPath = (path: string) => `${path}.1`;

/** Bytes per file before it rotates; with one rotated file, a VM's log never passes twice this. */
export const LOG_MAX_BYTES = 4 * 1024 * 1024;

/** How long the log (and record) of a VM that ended is kept, for `logs`, `ps -a` and `inspect`, unless it ran with --rm. */
export const KEEP_ENDED_LOG_MS = 24 * 3600 * 1000;

/**
 * The time a log line starts with, and a space: UTC with nine fractional digits, so that
 * every stamp has one length (the wall clock gives milliseconds). `fcvm logs -t`, `--since`
 * and `--until` read it. Pure.
 */
export function logStamp(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.min(999, Math.floor((ms - whole) * 1000));
  return `${new Date(whole).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}000Z `;
}

const now = () => Date.now();

/**
 * A size-bounded log file, rotated to NAME.log.1 when full. Each line starts with the
 * time it was written (logStamp). Writes are synchronous (a supervisor's last words must
 * land before it exits) and never throw: a full disk costs log lines, not the VM.
 */
export class RotatingLog implements TextSink {
  private fd: number | undefined;
  private size = 0;
  private atLineStart = true;
  /** Bytes dropped because a write failed (a full disk, say). */
  dropped = 0;

  constructor(
    readonly path: string,
    private readonly maxBytes = LOG_MAX_BYTES,
  ) {
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
    rmSync(rotatedPath(path), { force: true });
    this.fd = openSync(path, 'w', 0o600);
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.fd === undefined) return false;
    const buf = this.stamped(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    try {
      if (this.size > 0 && this.size + buf.length > this.maxBytes) this.rotate();
      writeSync(this.fd, buf);
      this.size += buf.length;
    } catch {
      this.dropped += buf.length;
    }
    return true;
  }

  /** `chunk` with the time before each line that starts in it. */
  private stamped(chunk: Uint8Array): Uint8Array {
    if (chunk.length === 0) return chunk;
    const stamp = Buffer.from(logStamp(now()));
    const parts: Uint8Array[] = [];
    let from = 0;
    for (let nl = chunk.indexOf(10); ; nl = chunk.indexOf(10, from)) {
      if (this.atLineStart) parts.push(stamp);
      const end = nl < 0 ? chunk.length : nl + 1;
      parts.push(chunk.subarray(from, end));
      from = end;
      this.atLineStart = nl >= 0;
      if (nl < 0 || from === chunk.length) break;
    }
    return Buffer.concat(parts);
  }

  private rotate(): void {
    closeSync(this.fd!);
    this.fd = undefined;
    renameSync(this.path, rotatedPath(this.path));
    this.fd = openSync(this.path, 'w', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Removes a VM's log, its rotated file and its ended record. */
export async function removeLog(path: string): Promise<void> {
  await rm(path, { force: true });
  await rm(rotatedPath(path), { force: true });
  await rm(recordPath(path), { force: true });
}

/**
 * Logs of VMs that are gone (their id names a dead supervisor): those older than
 * KEEP_ENDED_LOG_MS, and with `name`, every one of that name (a new VM replaces them).
 */
export async function pruneEndedLogs(logsDir: string, opts: { name?: string; now?: number } = {}): Promise<string[]> {
  const now = opts.now ?? Date.now();
  const pruned: string[] = [];
  for (const f of await readdir(logsDir).catch(() => [] as string[])) {
    // A record is pruned with its log; one whose log is gone, on its own.
    const p = parseLogName(f) ?? parseRecordName(f);
    if (!p || logOwnerAlive(p.id)) continue;
    if (p.name !== opts.name) {
      const mtime = await stat(join(logsDir, f)).then((s) => s.mtimeMs, () => now);
      if (now - mtime < KEEP_ENDED_LOG_MS) continue;
    }
    await removeLog(logPath(logsDir, p.name, p.id));
    pruned.push(f);
  }
  return pruned;
}

/** The logs of VMs named `name`, newest first. */
export async function logsOf(logsDir: string, name: string): Promise<{ path: string; id: string; mtimeMs: number }[]> {
  const out: { path: string; id: string; mtimeMs: number }[] = [];
  for (const f of await readdir(logsDir).catch(() => [] as string[])) {
    const p = parseLogName(f);
    if (p?.name !== name) continue;
    const mtimeMs = await stat(join(logsDir, f)).then((s) => s.mtimeMs, () => 0);
    out.push({ path: join(logsDir, f), id: p.id, mtimeMs });
  }
  return out.sort((a, b) => b.mtimeMs - a.mtimeMs);
}
