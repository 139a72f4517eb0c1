/**
 * The host's volume server of one VM: every volume's passthrough, served over one byte
 * Transport (the VM's `fuse` channel: a virtio-serial port on QEMU, a vsock port on
 * Firecracker, a memory pair in tests). It lives as long as its supervisor; a channel
 * that breaks the framing is closed, which the guest answers with EIO.
 */
import type { FsCalls } from '../os/fs-calls.js';
import type { Transport } from '../protocol/transport.js';
import { Op } from './abi.js';
import { OutWriter } from './codec.js';
import { encodeFuseFrame, FRAME_HEADER, FuseFrameDecoder, FuseFrameKind, MAX_FRAME } from './channel-frames.js';
import type { Owners } from './owners.js';
import { readFileSync } from 'node:fs';
import { Passthrough, type FdLimits } from './passthrough.js';
import { VolumeSession, type SessionLog } from './session.js';
import { HostChanges } from './host-changes.js';
import { invalidations, restoreTable, snapshotTable, type VolumeTable } from './table-snapshot.js';

export interface ServedVolume {
  /** The index the guest's frames carry. */
  index: number;
  hostPath: string;
  readOnly: boolean;
}

/**
 * Memory bound of one VM's server: request bytes being served plus reply bytes not yet
 * sent. Above HIGH the server stops reading the channel (the guest's writes then wait in
 * the VMM), and reads again below LOW.
 */
export const HIGH_WATER = 64 << 20;
export const LOW_WATER = 16 << 20;
const NO_REPLY = new Set([Op.FORGET, Op.BATCH_FORGET, Op.INTERRUPT]);
/** Pieces below this are copied into one write with their neighbours. */
const COALESCE_MAX = 64 << 10;
/** statfs f_type of network file systems (NFS, SMB, CIFS, Ceph, 9p, AFS, FUSE: sshfs and the like). */
const REMOTE_FS = new Set([0x6969, 0xfe534d42, 0xff534d42, 0x517b, 0xc36400, 0x1021997, 0x5346414f, 0x65735546]);

export class VolumeServer {
  private readonly sessions = new Map<number, VolumeSession>();
  private transport: Transport | undefined;
  private readonly decoder = new FuseFrameDecoder();
  /** Bytes held for requests being served, by volume and unique. */
  private readonly held = new Map<string, number>();
  private heldBytes = 0;
  private paused: NodeJS.Timeout | undefined;
  private readonly changes: HostChanges;
  /** Frames made in this turn of the event loop, written together at its end. */
  private out: Buffer[] = [];
  private outBytes = 0;

  constructor(
    volumes: readonly ServedVolume[],
    os: FsCalls,
    owners: Owners,
    private readonly log: SessionLog,
    restored?: readonly VolumeTable[],
    limits: FdLimits = fdLimits(volumes.length),
  ) {
    this.changes = new HostChanges(os, (m) => log.warn(m));
    for (const v of volumes) {
      const fs = new Passthrough(os, { readOnly: v.readOnly, owners, limits });
      fs.openRoot(v.hostPath);
      const session = new VolumeSession(fs, (m) => this.send(v.index, m), log, undefined, {
        attr: (nodeid, attr) => this.sendHint(v.index, FuseFrameKind.Attr, new OutWriter(8).u64(nodeid).buf, attr),
        emptyDir: (nodeid, seconds) => this.sendHint(v.index, FuseFrameKind.Empty, new OutWriter(12).u64(nodeid).u32(seconds).buf),
      });
      // Other machines change a network file system unseen: its volumes keep short timeouts.
      if (!REMOTE_FS.has(fs.statfs(1n).type)) {
        fs.watchChanges(this.changes.forVolume(v.index, {
          child: (dir, name) => fs.knownChild(dir, name),
          changed: (c) => {
            for (const n of session.hostChanged(c)) this.send(v.index, [n]);
          },
        }));
      }
      const table = restored?.find((t) => t.index === v.index);
      if (table) restoreTable(session, table);
      this.sessions.set(v.index, session);
    }
  }

  /**
   * Serves the guest over `t`. A restored server first tells the guest kernel to drop
   * what it cached of every file it knew: the host directory may differ now.
   */
  attach(t: Transport, opts: { invalidate?: boolean } = {}): void {
    this.transport = t;
    this.out = [];
    this.outBytes = 0;
    this.decoder.reset();
    t.onData((chunk) => {
      let frames;
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.log.warn(`volume channel closed: ${(e as Error).message}`);
        t.close();
        return;
      }
      for (const f of frames) {
        if (f.kind !== FuseFrameKind.Message) continue;
        const s = this.sessions.get(f.volume);
        if (!s) continue;
        this.hold(f.volume, f.body);
        s.handle(f.body);
      }
      if (this.pressure() > HIGH_WATER) this.pause(t);
    });
    t.onClose(() => {
      if (this.transport === t) this.transport = undefined;
    });
    t.write(encodeFuseFrame(0, FuseFrameKind.Hello));
    if (opts.invalidate) for (const [index, s] of this.sessions) for (const n of invalidations(s)) this.send(index, [n]);
  }

  /** One message as one frame: its header and the message's first part together, then the rest as they are. */
  private send(volume: number, parts: Buffer[]): void {
    const first = parts[0]!;
    const unique = first.readBigUInt64LE(8);
    if (unique !== 0n) {
      const key = `${volume}:${unique}`;
      const n = this.held.get(key);
      if (n !== undefined) {
        this.held.delete(key);
        this.heldBytes -= n;
      }
    }
    if (!this.transport) return;
    let len = 0;
    for (const p of parts) len += p.length;
    const head = Buffer.allocUnsafe(FRAME_HEADER + first.length);
    head.writeUInt32LE(FRAME_HEADER + len, 0);
    head.writeUInt16LE(volume, 4);
    head.writeUInt16LE(FuseFrameKind.Message, 6);
    first.copy(head, FRAME_HEADER);
    this.emit(head);
    for (let i = 1; i < parts.length; i++) if (parts[i]!.length > 0) this.emit(parts[i]!);
  }

  /**
   * Queues bytes for the guest. A request's frames (an attribute hint, the reply's
   * header and body) and the replies of requests served in the same turn go out in one
   * write at its end: the guest relay then wakes once for them, not once per piece.
   */
  private emit(b: Buffer): void {
    if (this.out.length === 0) process.nextTick(() => this.flush());
    this.out.push(b);
    this.outBytes += b.length;
  }

  private flush(): void {
    const t = this.transport;
    const out = this.out;
    this.out = [];
    this.outBytes = 0;
    if (!t) return;
    // Small pieces are copied together; a large one (a read's data) goes as it is.
    let small: Buffer[] = [];
    let smallBytes = 0;
    const writeSmall = () => {
      if (small.length > 0) t.write(small.length === 1 ? small[0]! : Buffer.concat(small, smallBytes));
      small = [];
      smallBytes = 0;
    };
    for (const b of out) {
      if (b.length >= COALESCE_MAX) {
        writeSmall();
        t.write(b);
        continue;
      }
      if (smallBytes + b.length > COALESCE_MAX) writeSmall();
      small.push(b);
      smallBytes += b.length;
    }
    writeSmall();
  }

  /** A hint for the guest relay, ahead of the reply it goes with (an Attr or Empty frame). */
  private sendHint(volume: number, kind: FuseFrameKind, ...body: Buffer[]): void {
    if (!this.transport) return;
    this.emit(encodeFuseFrame(volume, kind, Buffer.concat(body)));
  }

  /** Counts what a request will hold until its reply: its bytes, and what a read will return. */
  private hold(volume: number, body: Buffer): void {
    if (body.length < 40) return;
    const op = body.readUInt32LE(4);
    if (NO_REPLY.has(op)) return;
    const reply = (op === Op.READ || op === Op.READDIR || op === Op.READDIRPLUS) && body.length >= 60 ? body.readUInt32LE(56) : 0;
    const n = body.length + Math.min(reply, MAX_FRAME);
    const key = `${volume}:${body.readBigUInt64LE(8)}`;
    this.held.set(key, (this.held.get(key) ?? 0) + n);
    this.heldBytes += n;
  }

  private pressure(): number {
    return this.heldBytes + this.outBytes + (this.transport?.backlog?.() ?? 0);
  }

  private pause(t: Transport): void {
    if (this.paused || !t.pause || !t.resume) return;
    t.pause();
    this.paused = setInterval(() => {
      if (this.pressure() > LOW_WATER && this.transport === t) return;
      clearInterval(this.paused);
      this.paused = undefined;
      t.resume!();
    }, 2);
    this.paused.unref();
  }

  /** Bytes held for requests in progress (for tests). */
  get heldForRequests(): number {
    return this.heldBytes;
  }

  /** The inode and handle tables, for a snapshot (the VM is paused). */
  snapshot(): VolumeTable[] {
    return [...this.sessions].map(([index, s]) => snapshotTable(index, s));
  }

  /** Per opcode over all volumes: requests, and mean host time in microseconds. */
  stats(): Record<string, { count: number; meanUs: number }> {
    const all = new Map<number, { count: number; ms: number }>();
    for (const s of this.sessions.values()) {
      for (const [op, v] of s.stats) {
        const a = all.get(op) ?? { count: 0, ms: 0 };
        all.set(op, { count: a.count + v.count, ms: a.ms + v.ms });
      }
    }
    return Object.fromEntries([...all].map(([op, v]) => [Op[op] ?? String(op), { count: v.count, meanUs: Math.round((v.ms * 1000) / v.count) }]));
  }

  close(): void {
    clearInterval(this.paused);
    this.changes.close();
    this.transport?.close();
    for (const s of this.sessions.values()) s.fs.close();
    this.sessions.clear();
  }
}

/** The soft RLIMIT_NOFILE of this process, from /proc (Node has no getrlimit). */
function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const n = Number(line?.split(/\s+/)[3]);
    return Number.isFinite(n) && n > 0 ? n : 1024;
  } catch {
    return 1024;
  }
}

/**
 * Each volume's share of the descriptors this process may open, keeping 1,024 (or a
 * quarter) for the supervisor's own work: 60 % for inodes (the rest reopened by path),
 * 30 % for the guest's open files, 5 % for lock owners.
 */
export function fdLimits(volumes: number, limit = openFileLimit()): FdLimits {
  const budget = Math.max(64, limit - Math.max(1024, Math.floor(limit / 4))) / Math.max(1, volumes);
  return { inodeFds: Math.max(16, Math.floor(budget * 0.6)), handles: Math.max(16, Math.floor(budget * 0.3)), lockOwners: Math.max(4, Math.floor(budget * 0.05)) };
}
