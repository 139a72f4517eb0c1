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
import { UFFD_FEATURE_EVENT_REMOVE, uffdOps } from '../../os/uffd.js';

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
   * bad-json, outside-file, fault-outside, legacy: handshake variants.
   * file: no server; the regions map the memory file privately, as Firecracker's File
   * backend does, and the kernel answers the faults (the benchmark's baseline).
   */
  mode: 'verify' | 'touch' | 'remove' | 'bad-json' | 'outside-file' | 'fault-outside' | 'legacy' | 'file';
  /** Touch only this many pages per region (default: all). */
  pagesPerRegion?: number;
}

export interface HarnessReport {
  pages: number;
  mismatches: number;
  /** Pages that should have been zero after the removal, and were not. */
  notZeroed: number;
  ms: number;
  startedAt: number;
  endedAt: number;
}

interface ThreadJob {
  regions: { addr: number; size: number; offset: number }[];
  pageSize: number;
  thread: number;
  threads: number;
  verify: boolean;
  pagesPerRegion: number | undefined;
  file: SharedArrayBuffer | undefined;
}

/** Touches this thread's share of the pages (every threads-th one). */
function touch(job: ThreadJob): { pages: number; mismatches: number } {
  const mman = mmanOps();
  const file = job.file ? new Uint8Array(job.file) : undefined;
  let pages = 0;
  let mismatches = 0;
  let sink = 0;
  for (const r of job.regions) {
    const view = mman.view(r.addr, r.size);
    const count = Math.min(r.size / job.pageSize, job.pagesPerRegion ?? Infinity);
    for (let p = job.thread; p < count; p += job.threads) {
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

async function main(plan: HarnessPlan): Promise<HarnessReport> {
  const ps = plan.pageSize ?? 4096;
  const threads = plan.threads ?? 4;
  if (plan.mode === 'file') return fileBacked(plan, ps, threads);
  const uffd = uffdOps();
  const mman = mmanOps();
  const sock = fdSocketOps();
  const fd = uffd.create();
  uffd.api(fd, UFFD_FEATURE_EVENT_REMOVE);
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
  const run = async (verify: boolean, only?: typeof regions) => {
    const jobs = Array.from({ length: threads }, (_, t): ThreadJob => ({
      regions: only ?? touched, pageSize: ps, thread: t, threads, verify, pagesPerRegion: plan.pagesPerRegion, file: verify ? file : undefined,
    }));
    const results = await Promise.all(jobs.map((job) => new Promise<{ pages: number; mismatches: number }>((resolve, reject) => {
      const w = new Worker(fileURLToPath(import.meta.url), { workerData: job });
      w.once('message', resolve);
      w.once('error', reject);
    })));
    return results.reduce((a, b) => ({ pages: a.pages + b.pages, mismatches: a.mismatches + b.mismatches }), { pages: 0, mismatches: 0 });
  };
  const startedAt = Date.now();
  const t0 = performance.now();
  const first = await run(plan.mode !== 'touch');
  const ms = performance.now() - t0;
  let notZeroed = 0;
  if (plan.mode === 'remove') {
    // The guest gives pages back (a balloon does this): their next fault must bring zeros.
    const r = regions[0]!;
    const from = r.addr + 64 * ps;
    const len = 64 * ps;
    mman.madvise(from, len, MADV_DONTNEED);
    const view = mman.view(r.addr, r.size);
    for (let p = 0; p < 256; p++) {
      const page = view.subarray(p * ps, (p + 1) * ps);
      const zero = page.every((b) => b === 0);
      const removed = p >= 64 && p < 128;
      if (removed && !zero) notZeroed++;
      if (!removed && Buffer.compare(page, new Uint8Array(file!, r.offset + p * ps, ps)) !== 0) first.mismatches++;
    }
  }
  return { pages: first.pages, mismatches: first.mismatches, notZeroed, ms, startedAt, endedAt: Date.now() };
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
  const startedAt = Date.now();
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: threads }, (_, t) => new Promise<{ pages: number; mismatches: number }>((resolve, reject) => {
    const job: ThreadJob = { regions, pageSize: ps, thread: t, threads, verify: false, pagesPerRegion: plan.pagesPerRegion, file: undefined };
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
  })));
  return { pages: results.reduce((a, b) => a + b.pages, 0), mismatches: 0, notZeroed: 0, ms: performance.now() - t0, startedAt, endedAt: Date.now() };
}

if (!isMainThread) {
  parentPort!.postMessage(touch(workerData as ThreadJob));
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(JSON.parse(process.argv[2]!) as HarnessPlan).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + '\n');
      process.exit(0);
    },
    (e) => {
      process.stderr.write(`harness: ${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}
