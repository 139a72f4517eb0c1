import { closeSync, openSync, read, readdirSync, readFileSync, write } from 'node:fs';
import { join } from 'node:path';
import { SESSION_SYNC, SyncScanner } from '../protocol/session-sync.js';
import type { Transport } from '../protocol/transport.js';

/** Finds the virtio-serial port device named `name` (e.g. /dev/vport0p1). */
export function findVirtioPort(name: string, sysDir = '/sys/class/virtio-ports'): string | undefined {
  let entries: string[];
  try {
    entries = readdirSync(sysDir);
  } catch {
    return undefined;
  }
  for (const e of entries) {
    try {
      if (readFileSync(join(sysDir, e, 'name'), 'utf8').trim() === name) return `/dev/${e}`;
    } catch {
      // a port without a name
    }
  }
  return undefined;
}

/**
 * The guest end of a virtio-serial port, which outlives host connections. A read of 0
 * bytes means no host is connected; the first bytes after that start a new session.
 * Each session is handed to `onSession` as its own Transport, closed when the host goes.
 *
 * Armed (for a snapshot), it also starts a new session wherever the host writes
 * SESSION_SYNC: a restored guest's old session may never see its host hang up.
 */
export class PortLink {
  private fd: number;
  private session: { data?: (c: Uint8Array) => void; close?: (e?: Error) => void; closed: boolean } | undefined;
  private writing: Promise<void> = Promise.resolve();
  /** Bytes written by sessions and not yet taken by the host, and who waits for them to go. */
  private pending = 0;
  private drainWaiters: (() => void)[] = [];
  private stopped = false;
  private scanner: SyncScanner | undefined;

  constructor(
    path: string,
    private readonly onSession: (t: Transport) => void,
    private readonly idleMs = 10,
  ) {
    this.fd = openSync(path, 'r+');
    void this.readLoop();
  }

  /** Until the next SYNC, look for one in every chunk (see session-sync.ts). */
  arm(): void {
    this.scanner ??= new SyncScanner();
  }

  disarm(): void {
    this.scanner = undefined;
  }

  stop(): void {
    this.stopped = true;
    this.endSession();
    closeSync(this.fd);
  }

  private async readLoop(): Promise<void> {
    const buf = Buffer.allocUnsafe(256 * 1024);
    while (!this.stopped) {
      const n = await new Promise<number>((resolve) => read(this.fd, buf, 0, buf.length, null, (err, n) => resolve(err ? -1 : n)));
      if (n <= 0) {
        this.endSession();
        await new Promise((r) => setTimeout(r, this.idleMs));
        continue;
      }
      let chunk: Buffer = Buffer.from(buf.subarray(0, n));
      if (this.scanner) {
        const rest = this.scanner.push(chunk);
        if (rest !== undefined) {
          this.scanner = undefined;
          this.endSession();
          // Answer with SYNC, queued behind any write of the old session still going out.
          const sync = Buffer.from(SESSION_SYNC);
          this.writing = this.writing.then(() => this.writeAll(sync)).catch(() => {});
          this.startSession();
          chunk = rest;
        }
      }
      if (chunk.length === 0) continue;
      if (!this.session) this.startSession();
      this.session?.data?.(chunk);
    }
  }

  private startSession(): void {
    const s: NonNullable<PortLink['session']> = { closed: false };
    this.session = s;
    this.onSession({
      write: (data) => {
        if (s.closed) return;
        const copy = Buffer.from(data);
        this.pending += copy.length;
        // A write queued for a session that has ended must not reach the next host.
        this.writing = this.writing
          .then(() => (s.closed ? undefined : this.writeAll(copy)))
          .catch(() => {})
          .finally(() => this.taken(copy.length));
      },
      // What the host has not taken yet, so that output can wait instead of piling up here.
      backlog: () => this.pending,
      onceDrained: (cb) => (this.pending === 0 ? queueMicrotask(cb) : this.drainWaiters.push(cb)),
      onData: (cb) => (s.data = cb),
      onClose: (cb) => (s.close = cb),
      // The guest cannot hang up a virtio-serial port; closing ends this session only.
      close: () => {
        if (this.session === s) this.endSession();
        else s.closed = true;
      },
    });
  }

  private endSession(): void {
    const s = this.session;
    if (!s) return;
    this.session = undefined;
    s.closed = true;
    s.close?.();
  }

  private taken(n: number): void {
    this.pending -= n;
    if (this.pending === 0) for (const cb of this.drainWaiters.splice(0)) cb();
  }

  private async writeAll(data: Buffer): Promise<void> {
    let off = 0;
    while (off < data.length) {
      off += await new Promise<number>((resolve, reject) =>
        write(this.fd, data, off, data.length - off, null, (err, n) => (err ? reject(err) : resolve(n))),
      );
    }
  }
}
