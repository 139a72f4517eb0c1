/**
 * A page-server worker thread: one epoll loop over the listening sockets, handshakes,
 * uffds and pidfds of the clients it was given. It never yields to its event loop;
 * the main thread wakes it with an eventfd and it takes messages synchronously.
 */
import { readFileSync, readlinkSync, rmSync } from 'node:fs';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { EPOLLERR, EPOLLHUP, EPOLLIN, epollOps } from '../../os/epoll.js';
import { fdSocketOps } from '../../os/fd-socket.js';
import { errno } from '../../os/ffi.js';
import { pidfdOps } from '../../os/pidfd.js';
import { uffdOps } from '../../os/uffd.js';
import { threadCpuNs } from '../../os/clock.js';
import { windowPages } from './fault-around.js';
import { parseMappings } from './mappings.js';
import { uffdRefusal } from './uffd-features.js';
import { ServedClient, type MemoryMap } from './served-client.js';
import type { ToMain, ToWorker, WorkerInit } from './worker-protocol.js';

const SIGKILL = 9;
/** Recording of the first client's fault order stops after this long, or this many pages. */
const RECORD_MS = 30_000;
const RECORD_MAX = 1 << 18;
/** Pages of working set copied per client between two looks at the uffds. */
const PREFETCH_BUDGET = 256;

interface Entry {
  id: string;
  socketPath: string;
  allowUids: number[];
  record: boolean;
  prefetch: Uint32Array | undefined;
  listenFd?: number;
  connFd?: number;
  deadline?: number;
  pid?: number;
  pidfd?: number;
  client?: ServedClient;
  recordUntil?: number;
  tags: number[];
}

type Target = { kind: 'wake' } | { kind: 'listen' | 'conn' | 'uffd' | 'pidfd'; entry: Entry };

const init = workerData as WorkerInit;
const port = init.port as MessagePort;
const mem: MemoryMap = init.mem;
const ep = epollOps();
const sock = fdSocketOps();
const uffd = uffdOps();
const pidfd = pidfdOps();
const epfd = ep.create();
const targets = new Map<number, Target>();
const entries = new Map<string, Entry>();
let nextTag = 1;
let stopping = false;

const post = (m: ToMain) => parentPort!.postMessage(m);

function watch(fd: number, t: Target, entry?: Entry): void {
  const tag = nextTag++;
  targets.set(tag, t);
  entry?.tags.push(tag);
  ep.add(epfd, fd, EPOLLIN, tag);
}

watch(init.wakeFd, { kind: 'wake' });

/** Closes everything of an entry; the socket file goes too. */
function close(e: Entry): void {
  entries.delete(e.id);
  for (const t of e.tags) targets.delete(t);
  for (const fd of [e.listenFd, e.connFd, e.client?.uffd, e.pidfd]) {
    if (fd === undefined) continue;
    ep.remove(epfd, fd);
    sock.close(fd);
  }
  if (e.listenFd !== undefined) rmSync(e.socketPath, { force: true });
  if (e.client?.recording) finishRecording(e);
}

function finishRecording(e: Entry): void {
  const rec = e.client?.recording;
  if (!rec) return;
  e.client!.recording = undefined;
  if (rec.length > 0) {
    const pages = Uint32Array.from(rec);
    parentPort!.postMessage({ type: 'recorded', id: e.id, pages } satisfies ToMain, [pages.buffer]);
  }
}

/** Ends a client that broke the protocol: closed, and its VMM killed (it would hang or read wrong memory). */
function refuse(e: Entry, why: string): void {
  const killed = e.pidfd !== undefined && pidfd.signal(e.pidfd, SIGKILL) === 0;
  close(e);
  post({ type: 'refused', id: e.id, why, ...(e.pid !== undefined ? { pid: e.pid } : {}), killed });
}

function gone(e: Entry, why: string): void {
  close(e);
  post({ type: 'gone', id: e.id, why, stats: e.client?.stats ?? { faults: 0, around: 0, zeroPages: 0, prefetched: 0, removes: 0, already: 0 } });
}

function onMessage(m: ToWorker): void {
  if (m.type === 'stop') {
    stopping = true;
    return;
  }
  if (m.type === 'stats') {
    post({ type: 'stats', cpuNs: threadCpuNs(), faults: faultsServed, pages: pagesServed });
    return;
  }
  if (m.type === 'drop') {
    const e = entries.get(m.id);
    if (e) gone(e, 'dropped');
    return;
  }
  const e: Entry = { id: m.id, socketPath: m.socketPath, allowUids: m.allowUids, record: m.record, prefetch: m.prefetch, tags: [] };
  try {
    e.listenFd = sock.listenUnix(m.socketPath, 4);
  } catch (err) {
    post({ type: 'listen-failed', id: m.id, why: (err as Error).message });
    return;
  }
  entries.set(e.id, e);
  watch(e.listenFd, { kind: 'listen', entry: e }, e);
  post({ type: 'listening', id: m.id });
}

function onListen(e: Entry): void {
  for (;;) {
    const c = sock.accept(e.listenFd!);
    if (c < 0) return;
    // One VMM per socket; and only the users the server was told to expect.
    let uid = -1;
    try {
      uid = sock.peerCred(c).uid;
    } catch {
      // gone already
    }
    if (e.connFd !== undefined || !e.allowUids.includes(uid)) {
      sock.close(c);
      continue;
    }
    e.connFd = c;
    e.deadline = Date.now() + init.handshakeMs;
    timed.add(e);
    watch(c, { kind: 'conn', entry: e }, e);
  }
}

function onConn(e: Entry): void {
  const got = sock.recv(e.connFd!, 1 << 16);
  if (typeof got === 'number') {
    if (got === -errno.EAGAIN) return;
    return refuse(e, `reading its handshake failed (errno ${-got})`);
  }
  if (e.pid === undefined) {
    try {
      e.pid = sock.peerCred(e.connFd!).pid;
      const fromSocket = sock.peerPidfd(e.connFd!);
      e.pidfd = fromSocket >= 0 ? fromSocket : pidfd.open(e.pid);
    } catch {
      // The peer is gone; nothing to serve.
    }
  }
  const closeFds = () => got.fds.forEach((fd) => sock.close(fd));
  if (got.bytes.length === 0 && got.fds.length === 0) return refuse(e, 'it hung up before sending its memory mappings');
  if (got.truncated) return closeFds(), refuse(e, 'its handshake message is too large');
  if (got.fds.length !== 1) return closeFds(), refuse(e, `it sent ${got.fds.length} file descriptors with its mappings, not one uffd`);
  const fd = got.fds[0]!;
  let kind = '';
  try {
    kind = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    // not a file we can name
  }
  if (kind !== 'anon_inode:[userfaultfd]') return closeFds(), refuse(e, `the descriptor it sent is not a userfaultfd (${kind || 'unknown'})`);
  let fdinfo = '';
  try {
    fdinfo = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    // unreadable: refused below
  }
  const badUffd = uffdRefusal(fdinfo);
  if (badUffd) return closeFds(), refuse(e, badUffd);
  const parsed = parseMappings(got.bytes.toString('utf8'), mem.size);
  if (!parsed.ok) return closeFds(), refuse(e, parsed.why);
  if (e.pidfd === undefined) return closeFds(), gone(e, 'its VMM exited during the handshake');
  e.client = new ServedClient(e.id, fd, parsed.regions, parsed.pageSize, mem, uffd, {
    record: e.record, windowPages: windowPages(init.faultAroundBytes, parsed.pageSize), ...(e.prefetch ? { prefetch: e.prefetch } : {}),
  });
  if (e.record) e.recordUntil = Date.now() + RECORD_MS;
  else timed.delete(e);
  // The handshake is over: one client per socket, and the VMM never writes to it again.
  ep.remove(epfd, e.connFd!);
  sock.close(e.connFd!);
  ep.remove(epfd, e.listenFd!);
  sock.close(e.listenFd!);
  rmSync(e.socketPath, { force: true });
  e.connFd = undefined;
  e.listenFd = undefined;
  e.deadline = undefined;
  watch(fd, { kind: 'uffd', entry: e }, e);
  watch(e.pidfd, { kind: 'pidfd', entry: e }, e);
  post({ type: 'attached', id: e.id, pid: e.pid!, regions: parsed.regions.length, bytes: parsed.regions.reduce((s, r) => s + r.size, 0), pageSize: parsed.pageSize });
}

/** Clients with faults left over from their last turn. */
const busy = new Set<Entry>();
/** Entries waiting for a handshake or recording a working set: they have deadlines. */
const timed = new Set<Entry>();
/** Faults answered (some by a wake, the page being there already), and pages placed for them. */
let faultsServed = 0;
let pagesServed = 0;

function serve(e: Entry): void {
  const c = e.client!;
  const st = c.stats;
  const faults = st.faults + st.already;
  const pages = st.faults + st.around;
  const r = c.serve();
  faultsServed += st.faults + st.already - faults;
  pagesServed += st.faults + st.around - pages;
  if (r.kind === 'busy') busy.add(e);
  else busy.delete(e);
  if (r.kind === 'gone') gone(e, r.why);
  else if (r.kind === 'refuse') refuse(e, r.why);
  else if (c.recording && c.recording.length >= RECORD_MAX) finishRecording(e);
}

/** The nearest deadline (epoch ms) of the timed entries, or Infinity. Allocates nothing: it runs at every wake-up. */
function nearestDeadline(): number {
  let t = Infinity;
  for (const e of timed) {
    if (e.deadline !== undefined && e.deadline < t) t = e.deadline;
    if (e.recordUntil !== undefined && e.recordUntil < t) t = e.recordUntil;
  }
  return t;
}

function checkDeadlines(now: number): void {
  for (const e of [...timed]) {
    if (!entries.has(e.id)) timed.delete(e);
    else if (e.deadline !== undefined && now >= e.deadline) refuse(e, `it sent no memory mappings within ${init.handshakeMs} ms of connecting`);
    else if (e.recordUntil !== undefined && now >= e.recordUntil) {
      e.recordUntil = undefined;
      finishRecording(e);
    }
    if (e.deadline === undefined && e.recordUntil === undefined) timed.delete(e);
  }
}

const prefetchers = new Set<Entry>();
const events = new Uint32Array(2 * 64);
while (!stopping) {
  const due = timed.size > 0 ? nearestDeadline() : Infinity;
  const timeout = busy.size > 0 || prefetchers.size > 0 ? 0 : due === Infinity ? -1 : Math.max(0, Math.ceil(due - Date.now()));
  const n = ep.wait(epfd, events, timeout);
  if (n < 0 && n !== -errno.EINTR) throw new Error(`epoll_wait failed (errno ${-n})`);
  for (let i = 0; i < n; i++) {
    const t = targets.get(events[2 * i + 1]!);
    if (!t) continue;
    if (t.kind === 'wake') {
      ep.drain(init.wakeFd);
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) onMessage(m.message as ToWorker);
      continue;
    }
    const e = t.entry;
    if (!entries.has(e.id)) continue;
    if (t.kind === 'uffd') serve(e);
    else if (t.kind === 'pidfd') gone(e, 'its VMM exited');
    else if (t.kind === 'listen') onListen(e);
    else {
      onConn(e);
      if (e.client?.prefetching) prefetchers.add(e);
    }
  }
  for (const e of busy) if (entries.has(e.id)) serve(e);
  for (const e of prefetchers) {
    if (!entries.has(e.id) || !e.client?.prefetching) {
      prefetchers.delete(e);
      continue;
    }
    const r = e.client.prefetchSome(PREFETCH_BUDGET);
    if (r.kind === 'gone') gone(e, r.why);
  }
  if (due !== Infinity && Date.now() >= due) checkDeadlines(Date.now());
}
// A VMM whose memory server is gone would hang at its next fault: end it instead.
for (const e of [...entries.values()]) {
  const killed = e.client !== undefined && e.pidfd !== undefined && pidfd.signal(e.pidfd, SIGKILL) === 0;
  gone(e, killed ? 'the server is stopping; its VMM was killed' : 'the server is stopping');
}
ep.close(epfd);
post({ type: 'stopped', cpuNs: threadCpuNs(), faults: faultsServed, pages: pagesServed });
