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
 * Threads: one worker per volume blocks in read(2) on /dev/fuse, builds each request's
 * frame in shared memory and, while the host is connected, writes it to the port itself
 * (under the link's write lock): no hop through the agent's thread on the way out. The
 * link (fuse-link.ts) writes replies to /dev/fuse itself on the way back. The relay's
 * thread only keeps the books: which requests wait for an answer (to re-send them on a
 * new session, or answer EIO when the host is gone). One more worker writes the host's
 * invalidation notices, which may wait for page locks that only a reply releases.
 *
 * Each frame carries a claim word: the session generation it was sent in (0: not yet).
 * A worker and this thread may both try to send a frame when a session starts; a
 * compare-and-swap decides, so no request reaches the host twice in one session.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { E, Op, REQUEST_BUFFER_SIZE } from '../fuse/abi.js';
import { encodeReply } from '../fuse/codec.js';
import type { MountCalls } from '../os/fs-calls.js';
import { SESSION_SYNC } from '../protocol/session-sync.js';
import { writeReply, type FrameLink } from './fuse-link.js';
import { WRITE_LOCKED } from './vport-link.js';

export interface GuestVolume {
  index: number;
  /** Where the FUSE file system is mounted in the guest. */
  mountPoint: string;
  readOnly: boolean;
}

const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;

/** Relay states in shared memory: [0] the state, [1] the session generation. */
const WAITING = 0;
const CONNECTED = 1;
const LOST = 2;

/** Where a frame's claim word sits: after the frame, 4-byte aligned. */
const claimOffset = (frameLength: number) => (frameLength + 3) & ~3;

/**
 * Blocks in read(2) on the volume's /dev/fuse; builds each request's frame (and claim
 * word) in shared memory; sends it itself when connected and the link allows; answers
 * EIO itself when the host is gone; posts what the relay must keep.
 */
const READER = `
const { workerData, parentPort } = require('worker_threads');
const fs = require('fs');
${WRITE_LOCKED}
const { fd, volume, relay, port, lock } = workerData;
const buf = Buffer.allocUnsafe(workerData.size);
const eio = Buffer.alloc(16);
for (;;) {
  let n;
  try { n = fs.readSync(fd, buf, 0, buf.length, null); }
  catch (e) {
    if (e.code === 'EINTR' || e.code === 'EAGAIN' || e.code === 'ENOENT') continue;
    parentPort.postMessage({ end: e.code }); break;
  }
  const len = n + 8, at = (len + 3) & ~3;
  const sab = new SharedArrayBuffer(at + 4);
  const frame = new Uint8Array(sab, 0, len);
  const claim = new Int32Array(sab, at, 1);
  const head = new DataView(sab);
  head.setUint32(0, len, true);
  head.setUint16(4, volume, true);
  frame.set(buf.subarray(0, n), 8);
  const opcode = buf.readUInt32LE(4);
  const answered = opcode !== 2 && opcode !== 42 && opcode !== 36;
  const state = Atomics.load(relay, 0);
  if (state === ${LOST}) {
    if (answered) { eio.writeUInt32LE(16, 0); eio.writeInt32LE(-5, 4); buf.copy(eio, 8, 8, 16); try { fs.writeSync(fd, eio); } catch {} }
    continue;
  }
  let sent = false;
  if (state === ${CONNECTED} && port >= 0) {
    const gen = Atomics.load(relay, 1);
    if (Atomics.compareExchange(claim, 0, 0, gen) === 0) sent = writeLocked(fs, port, lock, frame);
  }
  if (answered || !sent) parentPort.postMessage(frame);
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
  /**
   * Answers that came before their request reached this thread (a reader thread sent it
   * and the host was quick): the request must not be kept when it arrives.
   */
  early: Set<bigint>;
}

/** waiting: no host session yet (boot, or after a resync); lost: the host went away. */
type LinkState = 'waiting' | 'connected' | 'lost';

export class FuseRelay {
  private readonly mounts = new Map<number, Mounted>();
  private state: LinkState = 'waiting';
  /** The state as the reader threads see it, and the session generation. */
  private readonly shared = new Int32Array(new SharedArrayBuffer(8));
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
        for (const [vol, unique] of done) {
          const m = this.mounts.get(vol);
          if (!m || m.pending.delete(unique)) continue;
          // Bounded: a request the guest kernel made always reaches this thread.
          if (m.early.size > 65_536) m.early.clear();
          m.early.add(unique);
        }
      },
      notify: (vol, body) => this.notify(vol, body),
      hangup: () => this.hangup(),
      resync: () => {
        // The snapshot's old session is over: answer SYNC, wait for the new host's hello.
        this.setState('waiting');
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
    const direct = this.link.direct;
    const reader = new Worker(READER, {
      eval: true,
      workerData: { fd, size: REQUEST_BUFFER_SIZE, volume: v.index, relay: this.shared, port: direct?.fd ?? -1, lock: direct?.lock ?? null },
    });
    const m: Mounted = { volume: v, fd, reader, pending: new Map(), early: new Set() };
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

  private setState(s: LinkState): void {
    this.state = s;
    Atomics.store(this.shared, 0, s === 'connected' ? CONNECTED : s === 'lost' ? LOST : WAITING);
  }

  /** Sends `frame` in the current session unless a reader thread already did. */
  private claimAndSend(frame: Uint8Array): void {
    const claim = new Int32Array(frame.buffer, claimOffset(frame.length), 1);
    const gen = Atomics.load(this.shared, 1);
    const was = Atomics.load(claim, 0);
    if (was !== gen && Atomics.compareExchange(claim, 0, was, gen) === was) this.link.send(frame);
  }

  private connected(): void {
    // A new session: every waiting request goes out once more (generation + 1).
    Atomics.add(this.shared, 1, 1);
    this.setState('connected');
    // A new session has begun: the snapshot that armed the relay is behind it.
    this.armed = false;
    for (const m of this.mounts.values()) for (const frame of m.pending.values()) this.claimAndSend(frame);
  }

  private hangup(): void {
    // Before the first session, a port without a host is only not connected yet.
    if (this.state !== 'connected' || this.armed) {
      if (this.state === 'connected') this.setState('waiting');
      return;
    }
    this.setState('lost');
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
    if (answered) {
      if (m.early.delete(unique)) return;
      m.pending.set(unique, frame);
    }
    if (this.state === 'connected') this.claimAndSend(frame);
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
