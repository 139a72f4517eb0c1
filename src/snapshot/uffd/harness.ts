/**
 * A stand-in for Firecracker's side of a userfaultfd restore, for tests and bench/uffd:
 * it does what Firecracker does (a uffd with EVENT_REMOVE, close-on-exec, non-blocking,
 * kernel faults included; guest regions mapped privately and anonymously, split as x86
 * splits memory around the MMIO gap; registered in MISSING mode; connects; sends the
 * GuestRegionUffdMapping JSON with the uffd as SCM_RIGHTS), then touches pages from
 * several threads and checks each against the memory file. It never serves a page:
 * the server under test does.
 *
 * Usage: node harness.js '<HarnessPlan JSON>'; prints one JSON line (HarnessReport).
 */
import { openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { fdSocketOps } from '../../os/fd-socket.js';
import { MADV_DONTNEED, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, mmanOps, PROT_READ, PROT_WRITE } from '../../os/mman.js';
import { UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMOVE, uffdOps } from '../../os/uffd.js';

export interface HarnessPlan {
  socket: string;
  memoryPath: string;
  /** Region sizes in bytes, laid out back to back in the file. */
  regions: number[];
  pageSize?: number;
  threads?: number;
  /**
   * verify: touch every page and compare it with the file.
   * touch: touch every page (one byte), for speed.
   * remove: verify, MADV_DONTNEED a range, then expect zeros there.
   * bad-json, outside-file, fault-outside, legacy, no-remove (a uffd without
   * EVENT_REMOVE), fork-events (one that asks for EVENT_FORK): handshake variants.
   * file: no server; the regions map the memory file privately, as Firecracker's File
   * backend does, and the kernel answers the faults (the benchmark's baseline).
   */
  mode: 'verify' | 'touch' | 'remove' | 'bad-json' | 'outside-file' | 'fault-outside' | 'legacy' | 'no-remove' | 'fork-events' | 'file';
  /** Touch only this many pages per region (default: all). */
  pagesPerRegion?: number;
  /** Touch every stride-th page only (default 1): a sparse guest, the worst case for fault-around. */
  stride?: number;
  /**
   * Print "ready" once the uffd is handed over and every thread is set up, then wait for
   * a line on stdin before touching: a benchmark starts all its clients at once, and
   * neither process start-up nor thread start-up is counted as time spent on faults.
   */
  startOnSignal?: boolean;
}

export interface HarnessReport {
  pages: number;
  mismatches: number;
  /** Pages that should have been zero after the removal, and were not. */
  notZeroed: number;
  /** Time spent touching: from the start signal to the last thread's end. */
  ms: number;
  /** Epoch milliseconds (fractional) of the start of touching, and of its end. */
  startedAt: number;
  endedAt: number;
  /** CPU time (user and system, µs) this process used while touching: the client's own cost of its faults. */
  cpuUs: number;
}

interface ThreadJob {
  regions: { addr: number; size: number; offset: number }[];
  pageSize: number;
  thread: number;
  threads: number;
  stride: number;
  verify: boolean;
  pagesPerRegion: number | undefined;
  file: SharedArrayBuffer | undefined;
  /** Word 0 turns 1 when the threads may start touching. */
  go: SharedArrayBuffer;
}

/** Touches this thread's share of the pages (every threads-th one), once `go` is set. */
function touch(job: ThreadJob): { pages: number; mismatches: number } {
  const mman = mmanOps();
  const file = job.file ? new Uint8Array(job.file) : undefined;
  const views = job.regions.map((r) => mman.view(r.addr, r.size));
  const go = new Int32Array(job.go);
  parentPort!.postMessage('ready');
  Atomics.wait(go, 0, 0);
  let pages = 0;
  let mismatches = 0;
  let sink = 0;
  const step = job.threads * job.stride;
  for (const [i, r] of job.regions.entries()) {
    const view = views[i]!;
    const count = Math.min(r.size / job.pageSize, job.pagesPerRegion ?? Infinity);
    for (let p = job.thread * job.stride; p < count; p += step) {
      const off = p * job.pageSize;
      sink ^= view[off]!;
      pages++;
      if (job.verify && file && Buffer.compare(view.subarray(off, off + job.pageSize), file.subarray(r.offset + off, r.offset + off + job.pageSize)) !== 0) mismatches++;
    }
  }
  void sink;
  return { pages, mismatches };
}

function readFileShared(path: string): SharedArrayBuffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const sab = new SharedArrayBuffer(size);
    const u8 = new Uint8Array(sab);
    for (let off = 0; off < size; ) off += readSync(fd, u8, off, Math.min(1 << 24, size - off), off);
    return sab;
  } finally {
    closeSync(fd);
  }
}

async function runHarness(plan: HarnessPlan): Promise<HarnessReport> {
  const ps = plan.pageSize ?? 4096;
  const threads = plan.threads ?? 4;
  if (plan.mode === 'file') return fileBacked(plan, ps, threads);
  const uffd = uffdOps();
  const mman = mmanOps();
  const sock = fdSocketOps();
  const fd = uffd.create();
  uffd.api(fd, plan.mode === 'no-remove' ? 0 : plan.mode === 'fork-events' ? UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_FORK : UFFD_FEATURE_EVENT_REMOVE);
  // Each region its own mapping, so their addresses are not contiguous (as around the MMIO gap).
  let offset = 0;
  const regions = plan.regions.map((size) => {
    const addr = mman.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    uffd.register(fd, addr, size);
    const r = { addr, size, offset };
    offset += size;
    return r;
  });
  let declared = regions.map((r) => ({ base_host_virt_addr: r.addr, size: r.size, offset: r.offset, page_size: ps, page_size_kib: ps }));
  if (plan.mode === 'outside-file') declared = declared.map((d, i) => (i === declared.length - 1 ? { ...d, offset: d.offset + ps * 16 } : d));
  if (plan.mode === 'fault-outside') declared = declared.slice(0, 1);
  if (plan.mode === 'legacy') declared = declared.map(({ page_size: _, ...d }) => d) as typeof declared;
  const message = plan.mode === 'bad-json' ? '[{"base_host_virt_addr": 4096, "size": ' : JSON.stringify(declared);
  const conn = sock.connectUnix(plan.socket);
  sock.send(conn, Buffer.from(message), [fd]);
  // Firecracker keeps both the socket and its uffd open for the VM's life.

  const file = plan.mode === 'touch' ? undefined : readFileShared(plan.memoryPath);
  const touched = plan.mode === 'fault-outside' ? regions.slice(1) : regions;
  const jobs = Array.from({ length: threads }, (_, t): Omit<ThreadJob, 'go'> => ({
    regions: touched, pageSize: ps, thread: t, threads, stride: plan.stride ?? 1, verify: plan.mode !== 'touch', pagesPerRegion: plan.pagesPerRegion, file: plan.mode === 'touch' ? undefined : file,
  }));
  const first = await touchAll(jobs, plan.startOnSignal ?? false);
  let notZeroed = 0;
  if (plan.mode === 'remove') {
    // The guest gives pages back (a balloon does this): their next fault must bring zeros.
    const r = regions[0]!;
    const view = mman.view(r.addr, r.size);
    const isZero = (p: number) => view.subarray(p * ps, (p + 1) * ps).every((b) => b === 0);
    const fromFile = (p: number) => Buffer.compare(view.subarray(p * ps, (p + 1) * ps), new Uint8Array(file!, r.offset + p * ps, ps)) === 0;
    mman.madvise(r.addr + 64 * ps, 64 * ps, MADV_DONTNEED);
    // Pages never touched, given back, between two that are touched next: a server that
    // copies neighbours of a fault must not fill them from the file.
    const far = Math.min(r.size / ps, (plan.pagesPerRegion ?? 256) + 64) - 16;
    mman.madvise(r.addr + (far + 3) * ps, 9 * ps, MADV_DONTNEED);
    const order = [...Array.from({ length: 256 }, (_, p) => p), far + 2, far + 12];
    for (const p of order) {
      const removed = (p >= 64 && p < 128);
      if (removed && !isZero(p)) notZeroed++;
      if (!removed && !fromFile(p)) first.mismatches++;
    }
    for (let p = far + 3; p < far + 12; p++) if (!isZero(p)) notZeroed++;
  }
  return { pages: first.pages, mismatches: first.mismatches, notZeroed, ms: first.ms, startedAt: first.startedAt, endedAt: first.endedAt, cpuUs: first.cpuUs };
}

/**
 * Starts one thread per job, waits until each is set up (and, if asked, for the start
 * signal on stdin), then lets them all touch at once and times only that.
 */
async function touchAll(jobs: Omit<ThreadJob, 'go'>[], startOnSignal: boolean) {
  const go = new SharedArrayBuffer(4);
  const workers = jobs.map((job) => new Worker(fileURLToPath(import.meta.url), { workerData: { ...job, go } satisfies ThreadJob }));
  const results = workers.map((w) => new Promise<{ pages: number; mismatches: number }>((resolve, reject) => {
    w.on('message', (m: 'ready' | { pages: number; mismatches: number }) => m !== 'ready' && resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`a touching thread exited (code ${code}) before it reported`)));
  }));
  await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
    w.on('message', (m) => m === 'ready' && resolve());
    w.once('error', reject);
  })));
  if (startOnSignal) {
    process.stdout.write('ready\n');
    // A benchmark that died before saying go closes our stdin: end, do not wait forever.
    const go = await new Promise<boolean>((resolve) => {
      process.stdin.once('data', () => resolve(true));
      process.stdin.once('end', () => resolve(false));
    });
    if (!go) throw new Error('stdin closed before the start signal');
    process.stdin.pause();
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  Atomics.store(new Int32Array(go), 0, 1);
  Atomics.notify(new Int32Array(go), 0);
  const done = await Promise.all(results);
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const sum = done.reduce((a, b) => ({ pages: a.pages + b.pages, mismatches: a.mismatches + b.mismatches }), { pages: 0, mismatches: 0 });
  return { ...sum, ms: t1 - t0, startedAt: performance.timeOrigin + t0, endedAt: performance.timeOrigin + t1, cpuUs: cpu.user + cpu.system };
}

/** The File backend: the memory file mapped privately, faults answered by the kernel. */
async function fileBacked(plan: HarnessPlan, ps: number, threads: number): Promise<HarnessReport> {
  const mman = mmanOps();
  const fd = openSync(plan.memoryPath, 'r');
  let offset = 0;
  const regions = plan.regions.map((size) => {
    const r = { addr: mman.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, offset), size, offset };
    offset += size;
    return r;
  });
  closeSync(fd);
  const jobs = Array.from({ length: threads }, (_, t): Omit<ThreadJob, 'go'> => ({
    regions, pageSize: ps, thread: t, threads, stride: plan.stride ?? 1, verify: false, pagesPerRegion: plan.pagesPerRegion, file: undefined,
  }));
  return { ...(await touchAll(jobs, plan.startOnSignal ?? false)), notZeroed: 0 };
}

/** The process entry: `node harness.js PLAN` prints one HarnessReport line; returns the exit code. */
async function main(argv: string[]): Promise<number> {
  const plan = JSON.parse(argv[2]!) as HarnessPlan;
  try {
    process.stdout.write(JSON.stringify(await runHarness(plan)) + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(`harness: ${(e as Error).stack}\n`);
    return 1;
  }
}

if (!isMainThread) {
  parentPort!.postMessage(touch(workerData as ThreadJob));
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // process.exit, not exitCode: the process ends once the report is out, whatever it still holds.
  process.exit(await main(process.argv));
}
