import { EventEmitter } from 'node:events';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import { epollOps } from '../../os/epoll.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, mmanOps, PROT_READ } from '../../os/mman.js';
import { packageRoot } from '../../util/package-root.js';
import { DEFAULT_FAULT_AROUND_BYTES } from './fault-around.js';
import { PAGE_2M } from './mappings.js';
import type { ClientStats } from './served-client.js';
import type { ToMain, ToWorker, WorkerInit } from './worker-protocol.js';

export interface PageServerOptions {
  /** The snapshot's memory file: every page served comes from it. */
  memoryPath: string;
  /** Worker threads (each serves many clients); FCVM_UFFD_WORKERS overrides the default. */
  workers?: number;
  /** How long a VMM may take from connecting to sending its mappings. */
  handshakeMs?: number;
  /** A recorded working set (file page numbers in fault order) to prefetch for each client. */
  workingSet?: Uint32Array;
  /**
   * KiB of memory placed around each fault, in one copy (fault-around, as the kernel does
   * for file mappings); 0 or 4 for the faulting page only. FCVM_UFFD_FAULT_AROUND_KIB
   * overrides the default of 64.
   */
  faultAroundKiB?: number;
}

export interface PageServerEvents {
  /** A VMM connected and sent valid mappings with its uffd. */
  attached: [{ id: string; pid: number; regions: number; bytes: number; pageSize: number }];
  /** A VMM broke the protocol; it was killed if it could be. */
  refused: [{ id: string; why: string; pid?: number; killed: boolean }];
  /** A client ended: its VMM exited, or it was dropped. */
  gone: [{ id: string; why: string; stats: ClientStats }];
  /** The first client's fault order: the working set later clients get prefetched. */
  recorded: [{ id: string; pages: Uint32Array }];
}

interface WorkerSlot {
  worker: Worker;
  port: import('node:worker_threads').MessagePort;
  wakeFd: number;
  clients: Set<string>;
  stopped: Promise<void>;
  cpu: { cpuNs: number; faults: number; pages: number };
  statsWaiter?: () => void;
}

/** The worker script: next to this file when compiled, a bundle entry when bundled. */
function workerEntry(): URL | string {
  const self = fileURLToPath(import.meta.url);
  return self.endsWith('.mjs') ? join(packageRoot(), 'dist', 'uffd-worker.mjs') : new URL('./worker.js', import.meta.url);
}

/**
 * The userfaultfd page server of one snapshot: a socket per client for a VMM to connect
 * to, and a pool of worker threads, each serving the faults of many clients from one
 * read-only mapping of the memory file, so that no client waits behind another's I/O
 * in the main thread.
 */
export class PageServer extends EventEmitter<PageServerEvents> {
  private readonly slots: WorkerSlot[] = [];
  private readonly owner = new Map<string, WorkerSlot>();
  private readonly pendingListens = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  private workingSet: Uint32Array | undefined;
  private recording = false;
  private stopped = false;

  private constructor(
    readonly memory: { base: number; size: number; zero: number },
    workingSet: Uint32Array | undefined,
  ) {
    super();
    this.workingSet = workingSet;
  }

  static async start(opts: PageServerOptions): Promise<PageServer> {
    const mman = mmanOps();
    const fd = openSync(opts.memoryPath, 'r');
    let base: number;
    let size: number;
    try {
      size = fstatSync(fd).size;
      if (size === 0) throw new Error(`the memory file ${opts.memoryPath} is empty`);
      base = mman.mmap(0, size, PROT_READ, MAP_SHARED, fd, 0);
    } finally {
      closeSync(fd);
    }
    const zero = mman.mmap(0, PAGE_2M, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const server = new PageServer({ base, size, zero }, opts.workingSet);
    const envWorkers = Number(process.env.FCVM_UFFD_WORKERS);
    const n = opts.workers ?? (Number.isInteger(envWorkers) && envWorkers > 0 ? envWorkers : Math.max(1, Math.min(4, availableParallelism() - 1)));
    const envAround = Number(process.env.FCVM_UFFD_FAULT_AROUND_KIB);
    const aroundKiB = opts.faultAroundKiB ?? (process.env.FCVM_UFFD_FAULT_AROUND_KIB && Number.isInteger(envAround) && envAround >= 0 ? envAround : undefined);
    const faultAroundBytes = aroundKiB === undefined ? DEFAULT_FAULT_AROUND_BYTES : aroundKiB * 1024;
    for (let i = 0; i < n; i++) server.slots.push(server.spawn(opts.handshakeMs ?? 10_000, faultAroundBytes));
    return server;
  }

  private spawn(handshakeMs: number, faultAroundBytes: number): WorkerSlot {
    const ep = epollOps();
    const wakeFd = ep.eventfd();
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(workerEntry(), { workerData: { mem: this.memory, wakeFd, port: port2, handshakeMs, faultAroundBytes } satisfies WorkerInit, transferList: [port2] });
    const slot: WorkerSlot = {
      worker,
      port: port1,
      wakeFd,
      clients: new Set(),
      cpu: { cpuNs: 0, faults: 0, pages: 0 },
      stopped: new Promise<void>((resolve) => worker.once('exit', () => resolve())),
    };
    worker.on('message', (m: ToMain) => this.onWorker(slot, m));
    worker.on('error', (e) => {
      for (const id of slot.clients) this.emit('gone', { id, why: `its page-server worker failed: ${e.message}`, stats: { faults: 0, around: 0, zeroPages: 0, prefetched: 0, removes: 0, already: 0 } });
      slot.clients.clear();
    });
    void slot.stopped.then(() => ep.close(wakeFd));
    return slot;
  }

  private send(slot: WorkerSlot, m: ToWorker): void {
    slot.port.postMessage(m);
    epollOps().signal(slot.wakeFd);
  }

  private onWorker(slot: WorkerSlot, m: ToMain): void {
    switch (m.type) {
      case 'listening':
        this.pendingListens.get(m.id)?.resolve();
        this.pendingListens.delete(m.id);
        return;
      case 'listen-failed':
        slot.clients.delete(m.id);
        this.owner.delete(m.id);
        this.pendingListens.get(m.id)?.reject(new Error(m.why));
        this.pendingListens.delete(m.id);
        return;
      case 'attached':
        this.emit('attached', m);
        return;
      case 'refused':
      case 'gone':
        slot.clients.delete(m.id);
        this.owner.delete(m.id);
        if (m.type === 'refused') this.emit('refused', m);
        else this.emit('gone', m);
        return;
      case 'recorded':
        this.recording = false;
        if (!this.workingSet) this.workingSet = m.pages;
        this.emit('recorded', m);
        return;
      case 'stats':
      case 'stopped':
        slot.cpu = { cpuNs: m.cpuNs, faults: m.faults, pages: m.pages };
        slot.statsWaiter?.();
        return;
    }
  }

  /**
   * Listens for one VMM at `socketPath` (which must not exist) and serves it once it
   * connects. Only peers whose uid is in `allowUids` (default: ours) are accepted.
   */
  listen(id: string, socketPath: string, opts: { allowUids?: number[] } = {}): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('the page server is stopping'));
    if (this.owner.has(id)) return Promise.reject(new Error(`client "${id}" is already served`));
    const slot = this.slots.reduce((a, b) => (b.clients.size < a.clients.size ? b : a));
    slot.clients.add(id);
    this.owner.set(id, slot);
    const record = !this.workingSet && !this.recording;
    if (record) this.recording = true;
    const done = new Promise<void>((resolve, reject) => this.pendingListens.set(id, { resolve, reject }));
    this.send(slot, { type: 'listen', id, socketPath, allowUids: opts.allowUids ?? [process.getuid?.() ?? 0], record, prefetch: this.workingSet });
    return done;
  }

  /** Stops serving a client (its clone ended): its uffd and socket are closed. */
  drop(id: string): void {
    const slot = this.owner.get(id);
    if (slot) this.send(slot, { type: 'drop', id });
  }

  /** How many clients are being served or awaited. */
  get clients(): number {
    return this.owner.size;
  }

  /**
   * Faults answered, pages placed for them and CPU time used by all workers so far
   * (start-up included: take differences): the server's cost per fault and per page.
   */
  async usage(): Promise<{ faults: number; pages: number; cpuNs: number }> {
    if (!this.stopped) {
      await Promise.all(this.slots.map((s) => new Promise<void>((resolve) => {
        s.statsWaiter = resolve;
        this.send(s, { type: 'stats' });
      })));
    }
    return this.slots.reduce((a, s) => ({ faults: a.faults + s.cpu.faults, pages: a.pages + s.cpu.pages, cpuNs: a.cpuNs + s.cpu.cpuNs }), { faults: 0, pages: 0, cpuNs: 0 });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const s of this.slots) this.send(s, { type: 'stop' });
    await Promise.all(this.slots.map((s) => s.stopped));
    const mman = mmanOps();
    mman.munmap(this.memory.base, this.memory.size);
    mman.munmap(this.memory.zero, PAGE_2M);
  }
}
