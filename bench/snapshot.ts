/**
 * bench/snapshot: clones from a memory server against cold boots, in one run.
 * 1. Time to first successful `fcvm exec VM -- cat /www/index.html`: cold `podman run`
 *    against `snapshot run --pid SERVER` (jailed, and with --no-jail: what the jail costs),
 *    alternating, plus `snapshot run --exec` end to end.
 * 2. Memory (PSS): the idle source VM's QEMU against 10 idle clones' QEMUs plus the server.
 * 3. Fan-out: 20 clones started at once, each publishing a port, until all answer HTTP.
 * Prints medians and ratios against the goals; `--json FILE` writes the result and samples.
 *
 *   node dist/bench/snapshot.js [--runs 3] [--image localhost/bb] [--base-port 18100] [--json out.json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runFcvm } from './timed-run.js';

const { values } = parseArgs({ options: {
  runs: { type: 'string', default: '3' }, image: { type: 'string', default: 'localhost/bb' },
  'base-port': { type: 'string', default: '18100' }, json: { type: 'string' },
} });
const runs = Number(values.runs);
const basePort = Number(values['base-port']);
const cli = resolve('dist/fcvm.mjs');
const SRC = `bench-src-${process.pid}`;
const TAG = `bench-snap-${process.pid}`;
const HTTPD = ['sh', '-c', 'mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www'];
const MEM_CLONES = 10;
const FAN_OUT = 20;

type Vm = { name: string; pid: number; vmmPid?: number; status: string };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (kb: number) => Math.round(kb / 1024);
const dead = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;


/** Every long-running fcvm process (supervisors, the server) with its exit; `finally` stops them. */
const exited = new Map<ChildProcess, Promise<void>>();
function start(args: string[]): ChildProcess {
  const p = spawn(process.execPath, [cli, ...args], { stdio: 'ignore' });
  exited.set(p, new Promise((r) => p.once('exit', () => r())));
  return p;
}

/** SIGTERM to each, then waits for all to exit; false if some did not within `ms`. */
async function stop(procs: ChildProcess[], ms = 60_000): Promise<boolean> {
  for (const p of procs) if (!dead(p)) p.kill('SIGTERM');
  const timeout = new Promise<false>((r) => setTimeout(() => r(false), ms).unref());
  return Promise.race([Promise.all(procs.map((p) => exited.get(p))).then(() => true), timeout]);
}

async function stopOrThrow(procs: ChildProcess[]): Promise<void> {
  if (!(await stop(procs))) throw new Error(`PIDs ${procs.filter((p) => !dead(p)).map((p) => p.pid).join(' ')} did not stop in 60 s`);
}

/** Polls `ok` every `everyMs` until it holds; throws after `limitMs`. */
async function until(what: string, ok: () => Promise<boolean>, limitMs = 300_000, everyMs = 200): Promise<void> {
  const t0 = performance.now();
  while (!(await ok())) {
    if (performance.now() - t0 > limitMs) throw new Error(`timed out after ${limitMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function vms(): Promise<Vm[]> {
  const r = await runFcvm(['ls', '--json']);
  if (r.code !== 0) throw new Error(`fcvm ls failed: ${r.err}`);
  return JSON.parse(r.out) as Vm[];
}

/**
 * Runs `fcvm exec NAME -- cat /www/index.html` until it prints hello, 50 ms between tries;
 * returns the time the successful exec exited. Gives up if `owner` (the supervisor) exits.
 */
async function firstExec(name: string, owner: ChildProcess, limitMs = 180_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const r = await runFcvm(['exec', name, '--', 'cat', '/www/index.html']);
    if (r.code === 0 && r.out.includes('hello')) return performance.now();
    if (dead(owner)) throw new Error(`${name} exited (${owner.exitCode ?? owner.signalCode}) before exec succeeded: ${r.err.trim()}`);
    if (performance.now() - t0 > limitMs) throw new Error(`${name}: exec did not succeed within ${limitMs / 1000} s: ${r.err.trim()}`);
    await sleep(50);
  }
}

/** Proportional set size of a process, in kB. */
function pss(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  if (!m) throw new Error(`no Pss line for PID ${pid}`);
  return Number(m[1]);
}

/** One GET of /index.html on the host port: true on 200 with "hello". */
function httpHello(port: number): Promise<boolean> {
  return new Promise((res) => {
    const req = get({ host: '127.0.0.1', port, path: '/index.html', agent: false, timeout: 1000 }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d));
      r.on('end', () => res(r.statusCode === 200 && body.includes('hello')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(false));
    req.on('close', () => res(false)); // no-op if already answered
  });
}

const cloneArgs = (servePid: number, name: string, extra: string[] = []) =>
  ['snapshot', 'run', '--pid', String(servePid), '--name', name, '--stop-timeout', '1', ...extra];

let snapshotted = false;
try {
  // The source VM, its snapshot, and the memory server every clone comes from.
  const src = start(['podman', 'run', '--name', SRC, '--stop-timeout', '1', values.image!, '--', ...HTTPD]);
  await until('the source VM to be healthy', async () => {
    if (dead(src)) throw new Error('the source VM exited');
    return (await vms()).some((v) => v.name === SRC && v.status === 'healthy');
  });
  await firstExec(SRC, src); // index.html is written before the snapshot
  snapshotted = true;
  const snap = await runFcvm(['snapshot', 'create', SRC, '--tag', TAG]);
  if (snap.code !== 0) throw new Error(`snapshot create failed: ${snap.err}`);
  console.log(snap.out.trim());
  const serve = start(['snapshot', 'serve', TAG]);
  const servePid = serve.pid!;
  await until('the memory server', async () => {
    if (dead(serve)) throw new Error('snapshot serve exited');
    const r = await runFcvm(['snapshot', 'ls', '--json']);
    return r.code === 0 && (JSON.parse(r.out) as { pid: number }[]).some((s) => s.pid === servePid);
  });

  // 1. Cold boot against clone, to the first successful exec, alternating.
  const samples = { cold: [] as number[], clone: [] as number[], cloneNoJail: [] as number[], cloneExec: [] as number[] };
  for (let i = 0; i < runs; i++) {
    const cold = `bench-cold-${process.pid}-${i}`;
    let t0 = performance.now();
    const c = start(['podman', 'run', '--name', cold, '--stop-timeout', '1', '--no-snapshot', values.image!, '--', ...HTTPD]);
    samples.cold.push((await firstExec(cold, c)) - t0);
    await stopOrThrow([c]);
    // A jailed clone and one with --no-jail, taking turns going first: what the jail costs a clone.
    for (const jailed of i % 2 === 0 ? [true, false] : [false, true]) {
      const clone = `bench-clone-${jailed ? '' : 'nj-'}${process.pid}-${i}`;
      t0 = performance.now();
      const k = start(cloneArgs(servePid, clone, jailed ? [] : ['--no-jail']));
      (jailed ? samples.clone : samples.cloneNoJail).push((await firstExec(clone, k)) - t0);
      await stopOrThrow([k]);
    }
    const x = await runFcvm(cloneArgs(servePid, `bench-x-${process.pid}-${i}`, ['--exec', 'cat /www/index.html']));
    if (x.code !== 0 || !x.out.includes('hello')) throw new Error(`snapshot run --exec failed (${x.code}): ${x.err.trim()}`);
    samples.cloneExec.push(x.ms);
    process.stderr.write(`run ${i + 1}/${runs}: cold ${Math.round(samples.cold[i]!)} ms, clone ${Math.round(samples.clone[i]!)} ms, clone --no-jail ${Math.round(samples.cloneNoJail[i]!)} ms, clone --exec ${Math.round(x.ms)} ms\n`);
  }

  // 2. Memory: the idle source VM's QEMU against 10 idle clones' QEMUs plus the server.
  const srcVmm = (await vms()).find((v) => v.name === SRC)?.vmmPid;
  if (srcVmm === undefined) throw new Error('the source VM has no VMM PID');
  const coldKb = pss(srcVmm);
  const memNames = Array.from({ length: MEM_CLONES }, (_, i) => `bench-mem-${process.pid}-${i}`);
  const memClones = memNames.map((n) => start(cloneArgs(servePid, n)));
  await until(`${MEM_CLONES} clones to be healthy`, async () => {
    if (memClones.some(dead)) throw new Error('a memory clone exited');
    const list = await vms();
    return memNames.every((n) => list.some((v) => v.name === n && v.status === 'healthy'));
  });
  await sleep(5000);
  const list = await vms();
  const cloneVmms = memNames.map((n) => list.find((v) => v.name === n)?.vmmPid);
  if (cloneVmms.some((p) => p === undefined)) throw new Error('a clone has no VMM PID');
  const clonesKb = cloneVmms.reduce((sum: number, p) => sum + pss(p!), 0) + pss(servePid);
  process.stderr.write(`memory: source ${mib(coldKb)} MiB, ${MEM_CLONES} clones + server ${mib(clonesKb)} MiB\n`);
  await stopOrThrow(memClones);

  // 3. Fan-out: 20 clones at once, each with its own port, until every one answers.
  const t0 = performance.now();
  const deadline = t0 + 120_000;
  const fan = Array.from({ length: FAN_OUT }, (_, i) => {
    const port = basePort + i;
    return { port, spawnedAt: performance.now(), p: start(cloneArgs(servePid, `bench-fan-${process.pid}-${i}`, ['--publish', `127.0.0.1:${port}:80`])) };
  });
  const answeredAt = await Promise.all(fan.map(async (f) => {
    while (performance.now() < deadline && !dead(f.p)) {
      if (await httpHello(f.port)) return performance.now();
      await sleep(100);
    }
    return undefined;
  }));
  const perClone = fan.flatMap((f, i) => (answeredAt[i] === undefined ? [] : [answeredAt[i]! - f.spawnedAt]));
  const ok = perClone.length;
  const allMs = ok === FAN_OUT ? Math.max(...answeredAt.map((t) => t!)) - t0 : undefined;
  await stopOrThrow(fan.map((f) => f.p));

  const result = {
    bench: 'snapshot',
    image: values.image,
    runs,
    cloneVsCold: {
      coldMedianMs: Math.round(median(samples.cold)),
      cloneMedianMs: Math.round(median(samples.clone)),
      ratio: Number((median(samples.clone) / median(samples.cold)).toFixed(4)),
      goal: 0.02,
      cloneExecMedianMs: Math.round(median(samples.cloneExec)),
      cloneNoJailMedianMs: Math.round(median(samples.cloneNoJail)),
      jailCost: Number((median(samples.clone) / median(samples.cloneNoJail) - 1).toFixed(3)),
    },
    memory: { coldMiB: mib(coldKb), clonesMiB: mib(clonesKb), clones: MEM_CLONES, ratio: Number((clonesKb / coldKb).toFixed(3)), goal: 1.5 },
    fanOut: {
      clones: FAN_OUT, answered: ok, successPct: Math.round((100 * ok) / FAN_OUT),
      allAnsweredMs: allMs === undefined ? null : Math.round(allMs),
      medianCloneMs: ok ? Math.round(median(perClone)) : null, slowestCloneMs: ok ? Math.round(Math.max(...perClone)) : null,
    },
    samples: { ...samples, fanOutCloneMs: perClone },
  };
  const { cloneVsCold: cc, memory: mem, fanOut: fo } = result;
  console.log(`snapshot clones, ${runs} runs each, alternating (median):`);
  console.log(`  cold podman run to first exec:        ${cc.coldMedianMs} ms`);
  console.log(`  snapshot run --pid to first exec:     ${cc.cloneMedianMs} ms`);
  console.log(`  ratio clone/cold: ${cc.ratio} (goal <= 1/50 (0.02))`);
  console.log(`  snapshot run --pid --no-jail:         ${cc.cloneNoJailMedianMs} ms (jail cost ${(cc.jailCost * 100).toFixed(1)} %)`);
  console.log(`  snapshot run --exec, end to end:      ${cc.cloneExecMedianMs} ms`);
  console.log(`memory (PSS, idle):`);
  console.log(`  1 cold VM (QEMU):                     ${mem.coldMiB} MiB`);
  console.log(`  ${MEM_CLONES} clones (QEMU) + memory server:    ${mem.clonesMiB} MiB`);
  console.log(`  ratio ${MEM_CLONES} clones/1 cold: ${mem.ratio} (goal <= ${mem.goal})`);
  console.log(`fan-out, ${FAN_OUT} clones at once, HTTP on published ports:`);
  console.log(`  answered: ${fo.answered}/${FAN_OUT} (${fo.successPct}%)`);
  console.log(`  all answered after: ${fo.allAnsweredMs === null ? 'not all within 120 s' : `${fo.allAnsweredMs} ms`}`);
  console.log(`  per clone to first answer: median ${fo.medianCloneMs ?? '-'} ms, slowest ${fo.slowestCloneMs ?? '-'} ms`);
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
} finally {
  const left = [...exited.keys()].filter((p) => !dead(p));
  if (!(await stop(left))) {
    const stuck = left.filter((p) => !dead(p));
    console.error(`warning: still running after 60 s: PIDs ${stuck.map((p) => p.pid).join(' ')}`);
    for (const p of stuck) p.unref();
  }
  if (snapshotted) {
    const d = await runFcvm(['snapshots', 'delete', TAG]);
    if (d.code !== 0) console.error(`warning: could not delete snapshot ${TAG}: ${d.err.trim()}`);
  }
}
