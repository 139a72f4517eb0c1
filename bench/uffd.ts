/**
 * bench/uffd: faults served per second by the userfaultfd page server, for 1 and for 10
 * clients at once, each client a harness process that does what Firecracker does and
 * touches every page of its guest memory from several threads. Side by side in the same
 * run: the same touches against the File backend (the memory file mapped privately,
 * faults answered by the kernel from the page cache), and the ratio. Also the server's
 * own CPU time per fault, which says what it could serve with the CPUs to itself.
 *
 *   node dist/bench/uffd.js [--mib 256] [--threads 2] [--rounds 3] [--json out.json]
 *
 * Needs root (userfaultfd). Goal: at least 200k faults/s.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PageServer } from '../src/snapshot/uffd/page-server.js';
import type { HarnessPlan, HarnessReport } from '../src/snapshot/uffd/harness.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '256' }, threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' }, json: { type: 'string' } } });
const MiB = 2 ** 20;
const mib = Number(values.mib);
const threads = Number(values.threads);
const rounds = Number(values.rounds);
const HARNESS = resolve('dist/src/snapshot/uffd/harness.js');
const GOAL = 200_000;

function harness(plan: HarnessPlan): Promise<HarnessReport> {
  return new Promise((res, rej) => execFile(process.execPath, [HARNESS, JSON.stringify(plan)], (err, stdout, stderr) => (err ? rej(new Error(stderr || String(err))) : res(JSON.parse(stdout) as HarnessReport))));
}

/** Pages per second over the span from the first client's first touch to the last one's end. */
const rate = (rs: HarnessReport[]) => rs.reduce((s, r) => s + r.pages, 0) / ((Math.max(...rs.map((r) => r.endedAt)) - Math.min(...rs.map((r) => r.startedAt))) / 1000);

const dir = mkdtempSync(join(tmpdir(), 'fcvm-bench-uffd-'));
try {
  const memory = join(dir, 'memory');
  // Random contents: no page is the zero page, none compresses.
  for (let i = 0; i < mib; i += 64) writeFileSync(memory, randomBytes(Math.min(64, mib - i) * MiB), { flag: i === 0 ? 'w' : 'a' });
  const regions = [Math.floor((mib * 3) / 4) * MiB, Math.ceil(mib / 4) * MiB];
  const results: Record<string, unknown>[] = [];
  let n = 0;
  for (const clients of [1, 10]) {
    const uffd: number[] = [];
    const file: number[] = [];
    const cpuPerFault: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // Alternating: the server (a fresh one: no working set to prefetch), then the kernel.
      const server = await PageServer.start({ memoryPath: memory });
      const runs: Promise<HarnessReport>[] = [];
      for (let c = 0; c < clients; c++) {
        const socket = join(dir, `c${++n}.sock`);
        await server.listen(`c${n}`, socket);
        runs.push(harness({ socket, memoryPath: memory, regions, mode: 'touch', threads }));
      }
      const rs = await Promise.all(runs);
      const use = await server.usage();
      await server.stop();
      uffd.push(rate(rs));
      cpuPerFault.push(use.cpuNs / use.faults / 1000);
      file.push(rate(await Promise.all(Array.from({ length: clients }, () => harness({ socket: '', memoryPath: memory, regions, mode: 'file', threads })))));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const r = {
      clients,
      uffdFaultsPerSec: Math.round(median(uffd)),
      fileBackendFaultsPerSec: Math.round(median(file)),
      ratio: Number((median(uffd) / median(file)).toFixed(3)),
      serverCpuUsPerFault: Number(median(cpuPerFault).toFixed(2)),
      serverCapacityFaultsPerSec: Math.round(1e6 / median(cpuPerFault)),
      samples: { uffd: uffd.map(Math.round), file: file.map(Math.round), cpuPerFault },
    };
    results.push(r);
    process.stdout.write(
      `${clients} client(s) x ${threads} threads, ${mib} MiB each: page server ${r.uffdFaultsPerSec} faults/s (goal ${GOAL}), ` +
      `File backend ${r.fileBackendFaultsPerSec}/s, ratio ${r.ratio}; server CPU ${r.serverCpuUsPerFault} us/fault (${r.serverCapacityFaultsPerSec}/s on one CPU)\n`,
    );
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ bench: 'uffd', mib, threads, rounds, goal: GOAL, results }, null, 2) + '\n');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
