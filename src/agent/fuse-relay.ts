/**
 * The guest side of volumes: each volume is a FUSE mount (mount(2) on /dev/fuse, no
 * libfuse) whose requests are relayed, byte for byte, over the `fuse` channel to the
 * host's server, which decodes and answers them (src/fuse/). The relay keeps every
 * request until its answer comes, so that:
 *   - requests are answered out of order, as the host finishes them;
 *   - a clone's relay re-sends, on its new host session, what its source's host never
 *     answered (the snapshot froze them in flight);
 *   - when the host is gone for good, every waiting request and every new one gets EIO:
 *     the guest never hangs on a dead host.
 *
 * Threads: one worker per volume blocks in read(2) on /dev/fuse (a blocking read in the
 * main thread would stall the agent, and one in libuv's pool would pin a pool thread);
 * the main thread writes replies (a write to /dev/fuse never blocks); one more worker
 * writes the host's invalidation notices, which may wait for page locks that only a
 * reply written by the main thread releases.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { E, Op, REQUEST_BUFFER_SIZE } from '../fuse/abi.js';
import { encodeFuseFrame, FuseFrameDecoder, FuseFrameKind } from '../fuse/channel-frames.js';
import { encodeReply } from '../fuse/codec.js';
import type { MountCalls } from '../os/fs-calls.js';
import type { Transport } from '../protocol/transport.js';

export interface GuestVolume {
  index: number;
  /** Where the FUSE file system is mounted in the guest. */
  mountPoint: string;
  readOnly: boolean;
}

const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;

/** Blocks in read(2) on the volume's /dev/fuse descriptor and posts each request. */
const READER = `
const { workerData, parentPort } = require('worker_threads');
const fs = require('fs');
const buf = Buffer.allocUnsafe(workerData.size);
for (;;) {
  let n;
  try { n = fs.readSync(workerData.fd, buf, 0, buf.length, null); }
  catch (e) {
    if (e.code === 'EINTR' || e.code === 'EAGAIN' || e.code === 'ENOENT') continue;
    parentPort.postMessage({ end: e.code }); break;
  }
  const out = new Uint8Array(n);
  out.set(buf.subarray(0, n));
  parentPort.postMessage(out, [out.buffer]);
}`;

/** Writes notifications to /dev/fuse off the main thread. */
const NOTIFIER = `
const { parentPort } = require('worker_threads');
const fs = require('fs');
parentPort.on('message', (m) => { try { fs.writeSync(m.fd, m.data); } catch {} });`;

interface Mounted {
  volume: GuestVolume;
  fd: number;
  reader: Worker;
  /** Requests sent to the host and not answered yet, by unique. */
  pending: Map<bigint, Uint8Array>;
}

type LinkState = 'waiting' | 'connected' | 'lost';

export class FuseRelay {
  private readonly mounts = new Map<number, Mounted>();
  private transport: Transport | undefined;
  private state: LinkState = 'waiting';
  private armed = false;
  private notifier: Worker | undefined;
  private readonly decoder = new FuseFrameDecoder();

  /** Set before the first mount (loading koffi is deferred until a volume needs it). */
  constructor(
    public calls: MountCalls | undefined,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** Mounts a volume (once) and starts relaying its requests. */
  mount(v: GuestVolume): void {
    if (this.mounts.has(v.index)) return;
    if (!this.calls) throw new Error('no mount calls');
    mkdirSync(v.mountPoint, { recursive: true });
    const fd = openSync('/dev/fuse', 'r+');
    const data = `fd=${fd},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions,max_read=${REQUEST_BUFFER_SIZE - 4096}`;
    const r = this.calls.mount('fcvm', v.mountPoint, 'fuse.fcvm', MS_NOSUID | MS_NODEV | (v.readOnly ? MS_RDONLY : 0), data);
    if (r < 0) {
      closeSync(fd);
      throw new Error(`mount of volume ${v.index} on ${v.mountPoint} failed: errno ${-r}`);
    }
    const reader = new Worker(READER, { eval: true, workerData: { fd, size: REQUEST_BUFFER_SIZE } });
    reader.unref();
    const m: Mounted = { volume: v, fd, reader, pending: new Map() };
    reader.on('message', (msg: Uint8Array | { end: string }) => {
      if (msg instanceof Uint8Array) this.request(m, msg);
      else this.log(`volume ${v.index}: /dev/fuse read ended (${msg.end})`);
    });
    this.mounts.set(v.index, m);
  }

  /** Until the next session, a lost session means a snapshot restore, not a dead host. */
  arm(): void {
    this.armed = true;
  }

  disarm(): void {
    this.armed = false;
  }

  /** A new host session: (re)send every request still waiting for its answer. */
  attach(t: Transport): void {
    this.transport = t;
    this.decoder.reset();
    this.armed = false;
    t.onData((chunk) => this.fromHost(t, chunk));
    t.onClose(() => this.lost(t));
  }

  private fromHost(t: Transport, chunk: Uint8Array): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.log(`volume channel: ${(e as Error).message}`);
      return;
    }
    for (const f of frames) {
      if (f.kind === FuseFrameKind.Hello) {
        if (this.transport !== t) continue;
        this.state = 'connected';
        for (const m of this.mounts.values()) for (const req of m.pending.values()) t.write(encodeFuseFrame(m.volume.index, FuseFrameKind.Message, req));
        continue;
      }
      const m = this.mounts.get(f.volume);
      if (!m || f.body.length < 16) continue;
      const unique = f.body.readBigUInt64LE(8);
      if (unique === 0n) {
        this.notify(m.fd, f.body);
        continue;
      }
      if (!m.pending.delete(unique)) continue;
      this.reply(m.fd, f.body);
    }
  }

  private lost(t: Transport): void {
    if (this.transport !== t) return;
    this.transport = undefined;
    if (this.armed) return;
    this.state = 'lost';
    this.log('volume channel lost: answering EIO');
    for (const m of this.mounts.values()) {
      for (const unique of m.pending.keys()) this.reply(m.fd, encodeReply(unique, E.EIO));
      m.pending.clear();
    }
  }

  private request(m: Mounted, req: Uint8Array): void {
    if (req.length < 40) return;
    const view = Buffer.from(req.buffer, req.byteOffset, req.byteLength);
    const opcode = view.readUInt32LE(4);
    const unique = view.readBigUInt64LE(8);
    const answered = opcode !== Op.FORGET && opcode !== Op.BATCH_FORGET && opcode !== Op.INTERRUPT;
    if (this.state === 'lost' && !this.armed) {
      if (answered) this.reply(m.fd, encodeReply(unique, E.EIO));
      return;
    }
    if (answered) m.pending.set(unique, req);
    if (this.state === 'connected') this.transport?.write(encodeFuseFrame(m.volume.index, FuseFrameKind.Message, req));
  }

  private reply(fd: number, body: Uint8Array): void {
    try {
      writeSync(fd, body);
    } catch (e) {
      // ENOENT: the request was interrupted and is gone. Anything else is the host's bug.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log(`reply rejected by the kernel: ${(e as Error).message}`);
    }
  }

  private notify(fd: number, body: Buffer): void {
    if (!this.notifier) {
      this.notifier = new Worker(NOTIFIER, { eval: true });
      this.notifier.unref();
    }
    this.notifier.postMessage({ fd, data: Uint8Array.from(body) });
  }

  /** Unmounts everything (tests; the guest normally keeps its mounts until power-off). */
  async close(): Promise<void> {
    for (const m of this.mounts.values()) {
      this.calls?.umount2(m.volume.mountPoint, 2 /* MNT_DETACH */);
      await m.reader.terminate();
      try {
        closeSync(m.fd);
      } catch {
        // already closed
      }
    }
    this.mounts.clear();
    await this.notifier?.terminate();
  }
}
