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
 * Threads: one worker per volume blocks in read(2) on /dev/fuse and hands each request
 * over as a ready frame in shared memory (no copy on the way to the link); the link
 * (fuse-link.ts) writes replies to /dev/fuse itself; one more worker writes the host's
 * invalidation notices, which may wait for page locks that only a reply releases.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { E, Op, REQUEST_BUFFER_SIZE } from '../fuse/abi.js';
import { encodeReply } from '../fuse/codec.js';
import type { MountCalls } from '../os/fs-calls.js';
import { SESSION_SYNC } from '../protocol/session-sync.js';
import { writeReply, type FrameLink } from './fuse-link.js';

export interface GuestVolume {
  index: number;
  /** Where the FUSE file system is mounted in the guest. */
  mountPoint: string;
  readOnly: boolean;
}

const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;

/** Blocks in read(2) on the volume's /dev/fuse and posts each request as a whole frame. */
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
  const frame = new Uint8Array(new SharedArrayBuffer(n + 8));
  const head = new DataView(frame.buffer);
  head.setUint32(0, n + 8, true);
  head.setUint16(4, workerData.volume, true);
  frame.set(buf.subarray(0, n), 8);
  parentPort.postMessage(frame);
}`;

/** Writes notifications to /dev/fuse off the relay's threads. */
const NOTIFIER = `
const { parentPort } = require('worker_threads');
const fs = require('fs');
parentPort.on('message', (m) => { try { fs.writeSync(m.fd, m.data); } catch {} });`;

interface Mounted {
  volume: GuestVolume;
  fd: number;
  reader: Worker;
  /** Requests sent to the host and not answered yet (whole frames), by unique. */
  pending: Map<bigint, Uint8Array>;
}

/** waiting: no host session yet (boot, or after a resync); lost: the host went away. */
type LinkState = 'waiting' | 'connected' | 'lost';

export class FuseRelay {
  private readonly mounts = new Map<number, Mounted>();
  private state: LinkState = 'waiting';
  private armed = false;
  private notifier: Worker | undefined;

  /** `calls` may be set later, before the first mount (loading koffi waits until a volume needs it). */
  constructor(
    private readonly link: FrameLink,
    public calls: MountCalls | undefined,
    private readonly log: (msg: string) => void = () => {},
  ) {
    link.listen({
      hello: () => this.connected(),
      answered: (done) => {
        for (const [vol, unique] of done) this.mounts.get(vol)?.pending.delete(unique);
      },
      notify: (vol, body) => this.notify(vol, body),
      hangup: () => this.hangup(),
      resync: () => {
        // The snapshot's old session is over: answer SYNC, wait for the new host's hello.
        this.state = 'waiting';
        this.armed = false;
        link.send(SESSION_SYNC);
      },
    });
  }

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
    this.link.setVolumeFd(v.index, fd);
    const reader = new Worker(READER, { eval: true, workerData: { fd, size: REQUEST_BUFFER_SIZE, volume: v.index } });
    const m: Mounted = { volume: v, fd, reader, pending: new Map() };
    reader.on('message', (msg: Uint8Array | { end: string }) => {
      if (msg instanceof Uint8Array) this.request(m, msg);
      else this.log(`volume ${v.index}: /dev/fuse read ended (${msg.end})`);
    });
    reader.unref();
    this.mounts.set(v.index, m);
  }

  /** A snapshot is being taken: until the next session, a lost host means a restore. */
  arm(): void {
    this.armed = true;
    this.link.arm();
  }

  disarm(): void {
    this.armed = false;
    this.link.disarm();
  }

  private connected(): void {
    this.state = 'connected';
    // A new session has begun: the snapshot that armed the relay is behind it.
    this.armed = false;
    for (const m of this.mounts.values()) for (const frame of m.pending.values()) this.link.send(frame);
  }

  private hangup(): void {
    // Before the first session, a port without a host is only not connected yet.
    if (this.state !== 'connected' || this.armed) {
      if (this.state === 'connected') this.state = 'waiting';
      return;
    }
    this.state = 'lost';
    this.log('volume channel lost: answering EIO');
    for (const m of this.mounts.values()) {
      for (const unique of m.pending.keys()) writeReply(m.fd, encodeReply(unique, E.EIO));
      m.pending.clear();
    }
  }

  private request(m: Mounted, frame: Uint8Array): void {
    if (frame.length < 48) return;
    const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const opcode = view.readUInt32LE(12);
    const unique = view.readBigUInt64LE(16);
    const answered = opcode !== Op.FORGET && opcode !== Op.BATCH_FORGET && opcode !== Op.INTERRUPT;
    if (this.state === 'lost') {
      if (answered) writeReply(m.fd, encodeReply(unique, E.EIO));
      return;
    }
    if (answered) m.pending.set(unique, frame);
    if (this.state === 'connected') this.link.send(frame);
  }

  private notify(vol: number, body: Uint8Array): void {
    const m = this.mounts.get(vol);
    if (!m) return;
    if (!this.notifier) {
      this.notifier = new Worker(NOTIFIER, { eval: true });
      this.notifier.unref();
    }
    this.notifier.postMessage({ fd: m.fd, data: body });
  }

  /** Unmounts everything (tests; the guest keeps its mounts until power-off). */
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
