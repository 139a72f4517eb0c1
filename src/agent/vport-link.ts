/**
 * The `fuse` channel over the guest's virtio-serial port, in two worker threads:
 *   - the downlink blocks in read(2) on the port (which gives at most one 4 KiB buffer
 *     per read), assembles frames (reading big ones straight into place), writes each
 *     reply to its volume's /dev/fuse and tells the relay which requests are answered;
 *   - the uplink writes what the relay sends (the port takes at most 32 KiB per write).
 * Neither holds up the agent's event loop, nor pins a libuv pool thread, and a reply
 * costs no hop through the main thread. Shared memory carries the volume descriptors
 * and the "armed" flag (SESSION_SYNC scanning), which the downlink reads between reads.
 */
import { openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { MAX_FRAME } from '../fuse/channel-frames.js';
import { SESSION_SYNC } from '../protocol/session-sync.js';
import type { FrameLink, LinkEvents } from './fuse-link.js';

const MAX_VOLUMES = 64;

const DOWNLINK = `
const { workerData, parentPort } = require('worker_threads');
const fs = require('fs');
const { fd, fds, armed, sync, maxFrame } = workerData;
const SYNC = Buffer.from(sync);
const nap = new Int32Array(new SharedArrayBuffer(4));
const rbuf = Buffer.allocUnsafe(64 * 1024);
const head = Buffer.alloc(8);
let headFill = 0, frame = null, fill = 0, hung = false, tail = Buffer.alloc(0);
let done = [];
function deliver(f) {
  const kind = f.readUInt16LE(6);
  if (kind === 1) { parentPort.postMessage({ hello: true }); return; }
  const vol = f.readUInt16LE(4);
  const body = f.subarray(8);
  if (vol >= fds.length || fds[vol] < 0 || body.length < 16) return;
  const unique = body.readBigUInt64LE(8);
  if (unique === 0n) { parentPort.postMessage({ notify: vol, body: Uint8Array.from(body) }); return; }
  try { fs.writeSync(fds[vol], body); } catch {}
  done.push([vol, unique]);
}
function feed(chunk) {
  let off = 0;
  while (off < chunk.length) {
    if (!frame) {
      const k = Math.min(8 - headFill, chunk.length - off);
      chunk.copy(head, headFill, off, off + k);
      headFill += k; off += k;
      if (headFill < 8) return;
      const len = head.readUInt32LE(0);
      headFill = 0;
      if (len < 8 || len > maxFrame) { parentPort.postMessage({ error: 'frame length ' + len }); return; }
      frame = Buffer.allocUnsafe(len); head.copy(frame, 0); fill = 8;
    }
    const k = Math.min(frame.length - fill, chunk.length - off);
    chunk.copy(frame, fill, off, off + k);
    fill += k; off += k;
    if (fill === frame.length) { const f = frame; frame = null; deliver(f); }
  }
}
for (;;) {
  let n;
  // A big frame's rest is read straight into place.
  const direct = frame && !Atomics.load(armed, 0) && frame.length - fill >= 4096;
  try { n = direct ? fs.readSync(fd, frame, fill, frame.length - fill, null) : fs.readSync(fd, rbuf, 0, rbuf.length, null); }
  catch (e) {
    if (e.code === 'EINTR') continue;
    // A non-blocking stand-in for the port (tests use a socket).
    if (e.code === 'EAGAIN') { Atomics.wait(nap, 0, 0, 1); continue; }
    n = 0;
  }
  if (n === 0) {
    if (!hung) { hung = true; headFill = 0; frame = null; parentPort.postMessage({ hangup: true }); }
    Atomics.wait(nap, 0, 0, 10);
    continue;
  }
  hung = false;
  if (direct) {
    fill += n;
    if (fill === frame.length) { const f = frame; frame = null; deliver(f); }
  } else {
    let chunk = rbuf.subarray(0, n);
    if (Atomics.load(armed, 0)) {
      const data = Buffer.concat([tail, chunk]);
      const at = data.indexOf(SYNC);
      if (at >= 0) {
        Atomics.store(armed, 0, 0);
        tail = Buffer.alloc(0); headFill = 0; frame = null;
        parentPort.postMessage({ resync: true });
        chunk = data.subarray(at + SYNC.length);
      } else tail = data.subarray(Math.max(0, data.length - (SYNC.length - 1)));
    }
    feed(chunk);
  }
  if (done.length > 0) { parentPort.postMessage({ answered: done }); done = []; }
}`;

/** Whole frames to the port under the shared write lock (see WRITE_LOCKED). */
export const WRITE_LOCKED = `
function writeLocked(fs, fd, lock, b) {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) Atomics.wait(lock, 0, 1, 20);
  try {
    let off = 0;
    while (off < b.length) {
      try { off += fs.writeSync(fd, b, off, b.length - off); }
      catch (e) { if (e.code === 'EAGAIN' || e.code === 'EINTR') { Atomics.wait(nap, 0, 0, 1); continue; } return false; }
    }
    return true;
  } finally { Atomics.store(lock, 0, 0); Atomics.notify(lock, 0, 1); }
}`;

const UPLINK = `
const { workerData, parentPort } = require('worker_threads');
const fs = require('fs');
${WRITE_LOCKED}
parentPort.on('message', (b) => writeLocked(fs, workerData.fd, workerData.lock, b));`;

export class VportFrameLink implements FrameLink {
  private readonly fds = new Int32Array(new SharedArrayBuffer(4 * MAX_VOLUMES)).fill(-1);
  private readonly armed = new Int32Array(new SharedArrayBuffer(4));
  readonly direct: { fd: number; lock: Int32Array };
  private readonly down: Worker;
  private readonly up: Worker;
  private events: LinkEvents | undefined;

  /** Opens the port at `path` (once: both threads share the descriptor, as a port opens only once). */
  static open(path: string, log: (m: string) => void): VportFrameLink {
    return new VportFrameLink(openSync(path, 'r+'), log);
  }

  constructor(fd: number, log: (m: string) => void) {
    this.direct = { fd, lock: new Int32Array(new SharedArrayBuffer(4)) };
    this.down = new Worker(DOWNLINK, { eval: true, workerData: { fd, fds: this.fds, armed: this.armed, sync: Uint8Array.from(SESSION_SYNC), maxFrame: MAX_FRAME } });
    this.up = new Worker(UPLINK, { eval: true, workerData: { fd, lock: this.direct.lock } });
    this.down.on('message', (m: { hello?: true; answered?: [number, bigint][]; notify?: number; body?: Uint8Array; hangup?: true; resync?: true; error?: string }) => {
      if (m.answered) this.events?.answered(m.answered);
      else if (m.hello) this.events?.hello();
      else if (m.notify !== undefined) this.events?.notify(m.notify, m.body!);
      else if (m.hangup) this.events?.hangup();
      else if (m.resync) this.events?.resync();
      else if (m.error) log(`volume channel: ${m.error}`);
    });
    this.down.on('error', (e) => log(`volume downlink failed: ${e.message}`));
    this.up.on('error', (e) => log(`volume uplink failed: ${e.message}`));
    // After the listeners: adding one refs a worker again.
    this.down.unref();
    this.up.unref();
  }

  send(bytes: Uint8Array): void {
    this.up.postMessage(bytes);
  }

  setVolumeFd(volume: number, fd: number): void {
    if (volume >= MAX_VOLUMES) throw new Error(`volume index ${volume} exceeds ${MAX_VOLUMES - 1}`);
    this.fds[volume] = fd;
  }

  arm(): void {
    Atomics.store(this.armed, 0, 1);
  }

  disarm(): void {
    Atomics.store(this.armed, 0, 0);
  }

  listen(events: LinkEvents): void {
    this.events = events;
  }

  /** Ends both threads (tests; in the guest the link lives as long as the agent). */
  async close(): Promise<void> {
    await Promise.all([this.down.terminate(), this.up.terminate()]);
  }
}
