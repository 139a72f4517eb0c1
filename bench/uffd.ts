/**
 * bench/uffd: how fast the userfaultfd page server fills a clone's memory, for 1 and for
 * 10 clients at once. Each client is a harness process that does what Firecracker does
 * (src/snapshot/uffd/harness.ts) and touches every page of its guest memory from several
 * threads. Clients start together, after their threads are up, so that only faults are
 * timed. Side by side in the same run:
 * - the same touches against the File backend (the memory file mapped privately, faults
 *   answered by the kernel from the page cache, with its own fault-around);
 * - with `--against DIR`, the page server of another build (a checkout of main, built),
 *   alternating round by round with this one: a before/after in one run;
 * - the floor (bench/uffd-floor.c, built with `cc` if there is one): a hand-written C page
 *   server with the same loop and fault-around, one process per client. The distance to
 *   it is the cost of fcvm's own code; the floor itself is what the kernel and the machine
 *   allow.
 *
 * Printed per server and client count (medians of the rounds):
 * - pages/s: guest pages made present per second, over the span from the start signal to
 *   the last client's end. The goal (200k/s) is on this figure.
 * - faults/s: userfault events the server answered per second. A fault can bring in more
 *   than one page (fault-around), so this is at most pages/s.
 * - server µs/fault and µs/page: the server's own CPU time over the span, divided. Its
 *   inverse is what one CPU given to the server could serve.
 * - client µs/page: the harness processes' CPU time (their threads taking the faults and
 *   waking up) per page. On this shared 2-core machine clients and server compete for the
 *   same CPUs, so both costs bound the end-to-end figure; both are printed to show which.
 *
 *   node dist/bench/uffd.js [--mib 256] [--threads 2] [--rounds 3] [--stride 1]
 *                           [--fault-around 64] [--against /path/to/other/checkout] [--json out.json]
 *
 * Needs root (userfaultfd).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { PageServer } from '../src/snapshot/uffd/page-server.js';
import type { HarnessPlan, HarnessReport } from '../src/snapshot/uffd/harness.js';

const { values } = parseArgs({ options: {
  mib: { type: 'string', default: '256' }, threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' },
  stride: { type: 'string', default: '1' }, 'fault-around': { type: 'string' }, against: { type: 'string' }, json: { type: 'string' },
} });
const MiB = 2 ** 20;
const mib = Number(values.mib);
const threads = Number(values.threads);
const rounds = Number(values.rounds);
const stride = Number(values.stride);
const HARNESS = resolve('dist/src/snapshot/uffd/harness.js');
const GOAL = 200_000;

/** What the bench needs of a page server; an older build's `usage()` counts faults only. */
interface Server {
  listen(id: string, socket: string): Promise<void>;
  usage(): Promise<{ faults: number; cpuNs: number; pages?: number }>;
  stop(): Promise<void>;
}
type Start = (memoryPath: string) => Promise<Server>;

const faultAround = values['fault-around'] === undefined ? {} : { faultAroundKiB: Number(values['fault-around']) };
const servers: { name: string; start: Start }[] = [{ name: 'this build', start: (memoryPath) => PageServer.start({ memoryPath, ...faultAround }) }];
if (values.against) {
  const other = (await import(pathToFileURL(join(resolve(values.against), 'dist/src/snapshot/uffd/page-server.js')).href)) as { PageServer: { start(o: { memoryPath: string }): Promise<Server> } };
  servers.push({ name: `--against ${values.against}`, start: (memoryPath) => other.PageServer.start({ memoryPath }) });
}
const dir = mkdtempSync(join(tmpdir(), 'fcvm-bench-uffd-'));
const floorBin = join(dir, 'uffd-floor');
try {
  execFileSync('cc', ['-O2', '-o', floorBin, resolve('bench/uffd-floor.c')], { stdio: 'pipe' });
  const windowPages = Math.max(1, Math.floor((Number(values['fault-around'] ?? 64) * 1024) / 4096));
  servers.push({ name: 'C floor', start: async (memoryPath) => floor(memoryPath, windowPages) });
} catch (e) {
  process.stdout.write(`*** SKIPPED the C floor: it did not build (${(e as Error).message.split('\n')[0]}) ***\n`);
}

/**
 * The C floor as a Server: one process per client. Its counts start at the handshake, so
 * the first usage() is zero; later ones wait for its processes, which report and exit
 * when their client has gone.
 */
const floors = new Set<import('node:child_process').ChildProcess>();
function floor(memoryPath: string, windowPages: number): Server {
  const reports: Promise<{ faults: number; pages: number; cpuNs: number }>[] = [];
  let asked = false;
  return {
    listen: (_id, socket) => new Promise((res, rej) => {
      const p = spawn(floorBin, [socket, memoryPath, String(windowPages)], { stdio: ['ignore', 'pipe', 'inherit'] });
      floors.add(p);
      const lines = createInterface({ input: p.stdout });
      const report = new Promise<{ faults: number; pages: number; cpuNs: number }>((done, fail) => {
        lines.on('line', (l) => (l === 'ready' ? res() : done(JSON.parse(l) as { faults: number; pages: number; cpuNs: number })));
        p.once('exit', (code) => {
          floors.delete(p);
          fail(new Error(`the C floor exited (${code})`));
          rej(new Error(`the C floor exited (${code})`));
        });
      });
      // Seen by usage() or stop(); an exit before then must not end the bench unhandled.
      report.catch(() => undefined);
      reports.push(report);
    }),
    async usage() {
      if (!asked) return (asked = true), { faults: 0, pages: 0, cpuNs: 0 };
      return (await Promise.all(reports)).reduce((a, r) => ({ faults: a.faults + r.faults, pages: a.pages + r.pages, cpuNs: a.cpuNs + r.cpuNs }), { faults: 0, pages: 0, cpuNs: 0 });
    },
    stop: async () => void (await Promise.allSettled(reports)),
  };
}

/** Every harness started and not yet exited: killed if the bench fails. */
const running = new Set<import('node:child_process').ChildProcess>();

/** A harness process, started and set up; `go()` starts its touching, `done` is its report. */
function harness(plan: HarnessPlan): Promise<{ go: () => void; done: Promise<HarnessReport> }> {
  const p = spawn(process.execPath, [HARNESS, JSON.stringify({ ...plan, startOnSignal: true })], { stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(p);
  p.once('exit', () => running.delete(p));
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  const lines = createInterface({ input: p.stdout });
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  let report: HarnessReport | undefined;
  return new Promise((res, rej) => {
    lines.on('line', (line) => {
      if (line !== 'ready') return void (report = JSON.parse(line) as HarnessReport);
      const done = exited.then((code) => (report && code === 0 ? report : Promise.reject(new Error(`harness failed (${code}): ${err}`))));
      done.catch(() => undefined); // awaited by measure(), unless another client failed first
      res({ go: () => p.stdin.end('go\n'), done });
    });
    void exited.then((code) => rej(new Error(`harness exited (${code}) before it was ready: ${err}`)));
  });
}

interface Sample { pagesPerSec: number; faultsPerSec: number; serverUsPerFault: number; serverUsPerPage: number; clientUsPerPage: number }

/** Starts every client, waits until all are ready, then starts them at once. */
async function measure(plans: HarnessPlan[], server?: Server): Promise<Sample> {
  const ready = await Promise.all(plans.map(harness));
  const before = await server?.usage();
  for (const h of ready) h.go();
  const rs = await Promise.all(ready.map((h) => h.done));
  const after = await server?.usage();
  const pages = rs.reduce((s, r) => s + r.pages, 0);
  const span = (Math.max(...rs.map((r) => r.endedAt)) - Math.min(...rs.map((r) => r.startedAt))) / 1000;
  const faults = before && after ? after.faults - before.faults : 0;
  const cpuUs = before && after ? (after.cpuNs - before.cpuNs) / 1000 : 0;
  return {
    pagesPerSec: pages / span,
    faultsPerSec: faults / span,
    serverUsPerFault: faults ? cpuUs / faults : 0,
    serverUsPerPage: cpuUs / pages,
    clientUsPerPage: rs.reduce((s, r) => s + r.cpuUs, 0) / pages,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = (ss: Sample[]) => Object.fromEntries((Object.keys(ss[0]!) as (keyof Sample)[]).map((k) => [k, median(ss.map((s) => s[k]))])) as unknown as Sample;
const fmt = (s: Sample) => `${Math.round(s.pagesPerSec)} pages/s, ${Math.round(s.faultsPerSec)} faults/s; server ${s.serverUsPerFault.toFixed(2)} us/fault, ` +
  `${s.serverUsPerPage.toFixed(2)} us/page (${Math.round(1e6 / s.serverUsPerPage)} pages/s on one CPU); client ${s.clientUsPerPage.toFixed(2)} us/page`;

try {
  const memory = join(dir, 'memory');
  // Random contents: no page is the zero page, none compresses.
  for (let i = 0; i < mib; i += 64) writeFileSync(memory, randomBytes(Math.min(64, mib - i) * MiB), { flag: i === 0 ? 'w' : 'a' });
  const regions = [Math.floor((mib * 3) / 4) * MiB, Math.ceil(mib / 4) * MiB];
  const results: Record<string, unknown>[] = [];
  let n = 0;
  const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
  process.stdout.write(`${mib} MiB per client, ${threads} touching threads each, every ${stride === 1 ? '' : `${stride}th `}page, ${rounds} rounds; load average ${load()}\n`);
  for (const clients of [1, 10]) {
    const samples = new Map<string, Sample[]>([...servers.map((s) => [s.name, []] as [string, Sample[]]), ['File backend', []]]);
    for (let round = 0; round < rounds; round++) {
      // Alternating, each server fresh (no working set to prefetch), then the kernel.
      for (const s of servers) {
        const server = await s.start(memory);
        try {
          const plans: HarnessPlan[] = [];
          for (let c = 0; c < clients; c++) {
            const socket = join(dir, `c${++n}.sock`);
            await server.listen(`c${n}`, socket);
            plans.push({ socket, memoryPath: memory, regions, mode: 'touch', threads, stride });
          }
          samples.get(s.name)!.push(await measure(plans, server));
        } finally {
          await server.stop();
        }
      }
      samples.get('File backend')!.push(await measure(Array.from({ length: clients }, () => ({ socket: '', memoryPath: memory, regions, mode: 'file', threads, stride }))));
    }
    const file = summary(samples.get('File backend')!);
    for (const s of servers) {
      const m = summary(samples.get(s.name)!);
      const verdict = m.pagesPerSec >= GOAL ? 'meets' : 'misses';
      process.stdout.write(`${clients} client(s), ${s.name}: ${fmt(m)}; ${verdict} the goal of ${GOAL} pages/s; ${(m.pagesPerSec / file.pagesPerSec).toFixed(2)}x the File backend\n`);
      results.push({ clients, server: s.name, ...m, samples: samples.get(s.name) });
    }
    process.stdout.write(`${clients} client(s), File backend: ${Math.round(file.pagesPerSec)} pages/s; client ${file.clientUsPerPage.toFixed(2)} us/page\n`);
    results.push({ clients, server: 'File backend', pagesPerSec: file.pagesPerSec, clientUsPerPage: file.clientUsPerPage, samples: samples.get('File backend') });
  }
  process.stdout.write(`load average ${load()}\n`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ bench: 'uffd', mib, threads, rounds, stride, goal: GOAL, results }, null, 2) + '\n');
} finally {
  for (const p of [...running, ...floors]) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
