import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { PassThrough, type Writable } from 'node:stream';
import { createProgress } from '../cli/progress.js';
import { errors } from '../errors/catalogue.js';
import { execInVm } from '../exec/exec-client.js';
import { findRunningVm } from '../exec/find-vm.js';
import type { StressOptions } from '../options/stress-options.js';
import type { Layout } from '../setup/layout.js';
import { loadServe } from '../snapshot/serve-state.js';
import { deleteSnapshot } from '../snapshot/listing.js';
import { requestSnapshot } from '../snapshot/request.js';
import { loadSnapshot } from '../snapshot/store.js';
import { StateStore } from '../state/store.js';
import { CleanupStack } from '../util/cleanup-stack.js';
import type { Logger } from '../util/log.js';
import { sleep } from '../util/proc.js';
import { cpuMeter, pssBytes, sampleHost } from './host-sample.js';
import { timeToHealthySvg } from './plot.js';
import { percentile, seconds } from './stats.js';

export interface StressEnv {
  layout: Layout;
  log: Logger;
  /** Progress and the summary (the user's stderr). */
  out: Writable & { isTTY?: boolean; columns?: number };
  interrupt: AbortSignal;
  /** The fcvm CLI, to start servers and clones as a user would. */
  cli: string;
}

export interface CloneResult {
  name: string;
  batch: number;
  /** When it was started, ms after the first clone. */
  startedAtMs: number;
  healthyMs?: number;
  error?: string;
  vmmPssBytes?: number;
  supervisorPssBytes?: number;
}

export interface StressReport {
  tag: string;
  clones: number;
  batch: number;
  probe: 'exec' | 'http';
  healthy: number;
  failed: number;
  successRate: number;
  durationMs: number;
  timeToHealthyMs: { p50?: number; p90?: number; max?: number };
  memoryPerClone: { vmmPssBytes?: number; supervisorPssBytes?: number };
  host: { memUsedBeforeBytes: number; memUsedPeakBytes: number; load1Peak: number };
  serverCpuPeakPercent: number;
  results: CloneResult[];
}

const MIB = 2 ** 20;
const mib = (b: number | undefined) => (b === undefined ? '-' : `${Math.round(b / MIB)} MiB`);
const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

/**
 * `fcvm test stress`: serves a snapshot, starts clones of it in batches (each its own
 * `fcvm snapshot run`, as a user would start them), waits until each answers (an exec
 * in its container, or HTTP on its published port), and reports time to healthy and
 * memory per clone. Everything it started is stopped, and a snapshot it took deleted.
 */
export async function runStress(opts: StressOptions, env: StressEnv): Promise<StressReport> {
  const cleanup = new CleanupStack();
  const progress = createProgress(env.out, 'stress');
  // Each probe is an exec client, which listens for signals to pass on: a batch of them is no leak.
  process.setMaxListeners(Math.max(process.getMaxListeners(), opts.batch * 2 + 10));
  const runId = randomBytes(3).toString('hex');
  const fcvm = (args: string[]) => spawn(process.execPath, [env.cli, '--base-dir', env.layout.base, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const tag = opts.source.kind === 'snapshot' ? opts.source.tag : await snapshotOfImage(opts.source.image, opts.sourceArgs, runId, env, fcvm, cleanup, progress.say);
    const { meta } = await loadSnapshot(env.layout, tag);
    const guestPort = meta.plan.network.publish[0]?.guestPort ?? 80;
    const server = await startServer(tag, env, fcvm, cleanup);
    const serverCpu = cpuMeter(server.pid!);
    const before = sampleHost();
    const peak = { mem: before.memUsedBytes, load: before.load1, cpu: 0 };
    const results: CloneResult[] = [];
    // Stopped all at once: one after the other, 50 clones with a grace each would take many minutes.
    const children = new Set<ChildProcess>();
    cleanup.push('stop the clones', () => Promise.all([...children].map((c) => stopChild(c, 30_000))));
    const counts = { started: 0, healthy: 0, failed: 0 };
    const t0 = performance.now();
    const tickLine = () => {
      const h = sampleHost();
      const cpu = serverCpu() ?? 0;
      peak.mem = Math.max(peak.mem, h.memUsedBytes);
      peak.load = Math.max(peak.load, h.load1);
      peak.cpu = Math.max(peak.cpu, cpu);
      return `started ${counts.started}/${opts.clones}, healthy ${counts.healthy}, failed ${counts.failed}, load ${h.load1.toFixed(1)}, memory ${gib(h.memUsedBytes)}, server CPU ${cpu}% (${seconds(performance.now() - t0)})`;
    };
    const ticker = setInterval(() => progress.live(tickLine()), 500);
    cleanup.push('stop the progress line', () => (clearInterval(ticker), progress.done()));
    const probe = opts.publishBase !== undefined ? 'http' : 'exec';
    progress.say(`serving "${tag}" (pid ${server.pid}); ${opts.clones} clones in batches of ${opts.batch}, healthy when ${probe === 'http' ? `HTTP answers on 127.0.0.1:${opts.publishBase}+i` : 'an exec runs in the container'}`);

    for (let first = 0; first < opts.clones && !env.interrupt.aborted; first += opts.batch) {
      const batchNo = first / opts.batch;
      const batch = Array.from({ length: Math.min(opts.batch, opts.clones - first) }, (_, k) => first + k);
      await Promise.all(batch.map(async (i) => {
        const name = `stress-${runId}-${i + 1}`;
        const port = opts.publishBase !== undefined ? opts.publishBase + i : undefined;
        const started = performance.now();
        const result: CloneResult = { name, batch: batchNo, startedAtMs: Math.round(started - t0) };
        results[i] = result;
        const child = fcvm(['snapshot', 'run', '--pid', String(server.pid), '--name', name, '--stop-timeout', '2',
          ...(port !== undefined ? ['--publish', `127.0.0.1:${port}:${guestPort}`] : [])]);
        counts.started++;
        children.add(child);
        const tail = stderrTail(child);
        const exited = new Promise<string>((resolve) => child.once('exit', (code, sig) => resolve(`its supervisor exited (${sig ?? `code ${code}`}): ${tail().split('\n').filter(Boolean).pop() ?? ''}`)));
        const healthy = waitHealthy(name, port, env, opts.healthTimeoutSeconds * 1000);
        const outcome = await Promise.race([healthy.then(() => undefined, (e: Error) => e.message), exited]);
        if (outcome === undefined) {
          result.healthyMs = Math.round(performance.now() - started);
          counts.healthy++;
        } else {
          result.error = outcome;
          counts.failed++;
          // A failed clone stops now: it must not slow down the ones still starting.
          void stopChild(child, 30_000);
        }
      }));
      progress.say(`batch ${batchNo + 1}: ${tickLine()}`);
    }
    if (env.interrupt.aborted) throw errors.interrupted(String(env.interrupt.reason), 130);

    // Memory while every clone runs: the VMM's and the supervisor's proportional share.
    const store = new StateStore(env.layout.vmState);
    for (const r of results.filter((x) => x.healthyMs !== undefined)) {
      const s = await store.load(r.name);
      if (!s.ok) continue;
      if (s.state.vmmPid) r.vmmPssBytes = pssBytes(s.state.vmmPid);
      r.supervisorPssBytes = pssBytes(s.state.pid);
    }
    tickLine();
    const times = results.flatMap((r) => (r.healthyMs !== undefined ? [r.healthyMs] : []));
    const avg = (xs: (number | undefined)[]) => {
      const v = xs.filter((x): x is number => x !== undefined);
      return v.length ? Math.round(v.reduce((a, b) => a + b, 0) / v.length) : undefined;
    };
    const report: StressReport = {
      tag, clones: opts.clones, batch: opts.batch, probe,
      healthy: counts.healthy, failed: counts.failed, successRate: counts.healthy / opts.clones,
      durationMs: Math.round(performance.now() - t0),
      timeToHealthyMs: { p50: percentile(times, 50), p90: percentile(times, 90), max: percentile(times, 100) },
      memoryPerClone: { vmmPssBytes: avg(results.map((r) => r.vmmPssBytes)), supervisorPssBytes: avg(results.map((r) => r.supervisorPssBytes)) },
      host: { memUsedBeforeBytes: before.memUsedBytes, memUsedPeakBytes: peak.mem, load1Peak: Math.round(peak.load * 10) / 10 },
      serverCpuPeakPercent: peak.cpu,
      results,
    };
    clearInterval(ticker);
    progress.done();
    const t = report.timeToHealthyMs;
    progress.say(`${report.healthy} of ${report.clones} clones healthy (${Math.round(report.successRate * 100)}%) in ${seconds(report.durationMs)}`);
    progress.say(`time to healthy: p50 ${seconds(t.p50)}, p90 ${seconds(t.p90)}, max ${seconds(t.max)}`);
    progress.say(`memory per clone: VMM ${mib(report.memoryPerClone.vmmPssBytes)} PSS, supervisor ${mib(report.memoryPerClone.supervisorPssBytes)} PSS; host memory in use ${gib(before.memUsedBytes)} before, ${gib(peak.mem)} at peak; peak load ${report.host.load1Peak}, server CPU peak ${peak.cpu}%`);
    for (const r of results.filter((x) => x.error)) progress.say(`${r.name} failed: ${r.error}`);
    if (opts.json) await writeFile(opts.json, JSON.stringify(report, null, 2) + '\n');
    if (opts.plot) {
      await writeFile(opts.plot, timeToHealthySvg(results.map((r, i) => ({ index: i, batch: r.batch, ms: r.healthyMs })),
        `fcvm test stress: ${report.healthy}/${report.clones} healthy, batches of ${opts.batch}, p50 ${seconds(t.p50)} p90 ${seconds(t.p90)}`));
    }
    return report;
  } finally {
    progress.say('stopping everything it started');
    const failures = await cleanup.run((name, e) => env.log.warn({ err: e }, `cleanup "${name}" failed`));
    if (failures.length) env.log.debug({ failures: failures.length }, 'stress cleanup had failures');
  }
}

/** Takes a snapshot of IMAGE for this run: a source VM, healthy, snapshotted, stopped. */
async function snapshotOfImage(image: string, sizeArgs: string[], runId: string, env: StressEnv, fcvm: (a: string[]) => ChildProcess, cleanup: CleanupStack, say: (l: string) => void): Promise<string> {
  const name = `stress-src-${runId}`;
  const tag = `stress-${runId}`;
  say(`starting a source VM from ${image} to snapshot`);
  const src = fcvm(['podman', 'run', '--name', name, ...sizeArgs, image]);
  const stopSource = cleanup.push(`stop source ${name}`, () => stopChild(src, 60_000));
  const tail = stderrTail(src);
  const store = new StateStore(env.layout.vmState);
  const until = Date.now() + 300_000;
  for (;;) {
    if (src.exitCode !== null || src.signalCode !== null) throw errors.snapshotRefused(name, `the source VM exited: ${tail().trim().split('\n').pop() ?? ''}`);
    const s = await store.load(name);
    if (s.ok && ['healthy', 'running'].includes(s.state.status)) break;
    if (Date.now() > until || env.interrupt.aborted) throw errors.agentTimeout(`the source VM "${name}" becoming healthy`, 300);
    await sleep(250);
  }
  const r = await requestSnapshot(env.layout, env.log, { name }, tag);
  cleanup.push(`delete snapshot ${tag}`, () => deleteSnapshot(env.layout, env.log, tag));
  say(`snapshot "${tag}" taken (source paused ${r.pausedMs} ms); stopping the source`);
  await stopSource();
  return tag;
}

async function startServer(tag: string, env: StressEnv, fcvm: (a: string[]) => ChildProcess, cleanup: CleanupStack): Promise<ChildProcess> {
  const server = fcvm(['snapshot', 'serve', tag]);
  cleanup.push('stop the memory server', () => stopChild(server, 60_000));
  const tail = stderrTail(server);
  const until = Date.now() + 120_000;
  while (!(await loadServe(env.layout, server.pid!))) {
    if (server.exitCode !== null || Date.now() > until) throw errors.serveNotFound(server.pid ?? 0);
    if (server.exitCode !== null) throw new Error(tail());
    await sleep(100);
  }
  return server;
}

/** Resolves once the clone answers: HTTP on its port, or an exec of `true` in its container. */
async function waitHealthy(name: string, port: number | undefined, env: StressEnv, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = 'it never answered';
  while (Date.now() < until) {
    if (env.interrupt.aborted) throw new Error('interrupted');
    try {
      if (port !== undefined) {
        await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) });
        return;
      }
      const { state, socket } = await findRunningVm(env.layout, env.log, { name });
      if (state.status === 'healthy' || state.status === 'running') {
        const sink = new PassThrough();
        sink.resume();
        const code = await execInVm(socket, name, { target: 'container', command: ['true'], env: {}, workdir: undefined, user: undefined, interactive: false, tty: false },
          { stdin: new PassThrough(), stdout: sink, stderr: sink, interrupt: new AbortController().signal });
        if (code === 0) return;
        last = `exec exited with ${code}`;
      }
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(500);
  }
  throw new Error(`not healthy within ${Math.round(timeoutMs / 1000)}s: ${last}`);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

/** The last 4 KiB a child wrote to stderr. */
function stderrTail(child: ChildProcess): () => string {
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => (tail = (tail + d).slice(-4096)));
  return () => tail;
}
