/**
 * bench/fast-start: the start paths of issue 13, side by side in one run, with medians.
 * 1. Cold `podman run` (--no-snapshot) until an exec succeeds, against the same run with
 *    a startup-snapshot hit (alternating).
 * 2. `snapshot run --exec` from the snapshot's files, through a memory server, and from
 *    a warm pool (`snapshot serve --pool 1`, each clone taken once the pool refilled).
 * 3. `fcvm exec VM -- true` against `nsenter` into the container, timed inside the guest.
 * 4. `snapshot create` of a running VM: the source's pause, and the snapshot's RAM and
 *    disk on disk against the guest's used memory.
 * Prints one clone's step log. `--json FILE` writes the result with every sample.
 * `--only snapshot` runs part 4 alone (and checks that a clone of it runs an exec);
 * `--only start` runs part 1 alone.
 *
 *   node dist/bench/fast-start.js [--runs 3] [--execs 10] [--image localhost/bb] [--mem 512] [--only snapshot|start] [--json out.json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: {
  runs: { type: 'string', default: '3' }, execs: { type: 'string', default: '10' },
  image: { type: 'string', default: 'localhost/bb' }, json: { type: 'string' },
  mem: { type: 'string' }, only: { type: 'string' },
} });
if (values.only !== undefined && values.only !== 'snapshot' && values.only !== 'start') throw new Error(`--only takes "snapshot" or "start", not "${values.only}"`);
const runs = Number(values.runs);
const execs = Number(values.execs);
const image = values.image!;
const cli = resolve('dist/fcvm.mjs');
const TAG = `bench-fs-${process.pid}`;
const HTTPD = ['sh', '-c', 'mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const dead = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;
const r3 = (x: number) => Number(x.toFixed(3));

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; code: number | null; out: string; err: string }> {
  return new Promise((res) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => res({ ms: performance.now() - t0, code, out, err }));
  });
}

const exited = new Map<ChildProcess, Promise<void>>();
function start(args: string[]): ChildProcess {
  const p = spawn(process.execPath, [cli, ...args], { stdio: 'ignore' });
  exited.set(p, new Promise((r) => p.once('exit', () => r())));
  return p;
}

async function stop(procs: ChildProcess[]): Promise<void> {
  for (const p of procs) if (!dead(p)) p.kill('SIGTERM');
  await Promise.race([Promise.all(procs.map((p) => exited.get(p))), sleep(60_000)]);
}

/** Where fcvm keeps a VM's state file (root's base dir unless FCVM_BASE_DIR says otherwise). */
const stateFile = (name: string) => join(process.env.FCVM_BASE_DIR ?? '/var/lib/fcvm', 'state', 'vms', `${name}.json`);

/**
 * Resolves once NAME's state says its container runs. Read in this process (inotify,
 * and every 250 ms in case an event is missed): polling with `fcvm exec` would take a
 * host core from the VM being timed on this 2-core machine.
 */
function untilRunning(name: string, owner: ChildProcess): Promise<void> {
  return new Promise((res, rej) => {
    const file = stateFile(name);
    const check = () => {
      let status: string | undefined;
      try {
        status = (JSON.parse(readFileSync(file, 'utf8')) as { status?: string }).status;
      } catch {
        // not written yet, or being replaced
      }
      if (status && ['running', 'healthy', 'unhealthy'].includes(status)) done(res);
      else if (dead(owner)) done(() => rej(new Error(`${name} exited before its container ran`)));
    };
    mkdirSync(dirname(file), { recursive: true });
    const watcher = watch(dirname(file), check);
    const timer = setInterval(check, 250);
    const done = (f: () => void) => {
      watcher.close();
      clearInterval(timer);
      f();
    };
    check();
  });
}

/** Time from `t0` until `fcvm exec NAME -- cat /www/index.html` prints hello (tried once the container runs). */
async function firstExec(name: string, owner: ChildProcess, t0: number, limitMs = 240_000): Promise<number> {
  await untilRunning(name, owner);
  for (;;) {
    const r = await run(['exec', name, '--', 'cat', '/www/index.html']);
    if (r.code === 0 && r.out.includes('hello')) return performance.now() - t0;
    if (dead(owner)) throw new Error(`${name} exited before an exec succeeded: ${r.err.trim()}`);
    if (performance.now() - t0 > limitMs) throw new Error(`${name}: no exec within ${limitMs / 1000} s: ${r.err.trim()}`);
    await sleep(50);
  }
}

async function waitHealthy(name: string, owner: ChildProcess): Promise<void> {
  for (let i = 0; ; i++) {
    if (dead(owner)) throw new Error(`${name} exited`);
    const ls = await run(['ls', '--json']);
    if ((JSON.parse(ls.out || '[]') as { name: string; status: string }[]).some((v) => v.name === name && v.status === 'healthy')) return;
    if (i > 1500) throw new Error(`${name} did not come up`);
    await sleep(200);
  }
}

const procs: ChildProcess[] = [];
let serve: ChildProcess | undefined;

/** Takes the snapshot TAG of the running VM `name`: its pause and sizes against the guest's used memory just before. */
async function snapshotOf(name: string) {
  const mem = await run(['exec', name, '--vm', '--', 'cat', '/proc/meminfo']);
  const kb = (k: string) => Number(mem.out.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))?.[1] ?? NaN);
  const guestUsedMiB = (kb('MemTotal') - kb('MemAvailable')) / 1024;
  const guestTouchedMiB = (kb('MemTotal') - kb('MemFree')) / 1024;
  const t0 = performance.now();
  const snap = await run(['snapshot', 'create', name, '--tag', TAG]);
  if (snap.code !== 0) throw new Error(`snapshot create failed: ${snap.err}`);
  const createMs = performance.now() - t0;
  const listed = (JSON.parse((await run(['snapshots', '--json'])).out) as { tag: string; pausedMs: number; memoryFileBytes: number; diskBytes: number }[]).find((x) => x.tag === TAG)!;
  return {
    pausedMs: listed.pausedMs,
    createMs: Math.round(createMs),
    ramOnDiskMiB: Math.round(listed.memoryFileBytes / 2 ** 20),
    diskLayerMiB: Math.round(listed.diskBytes / 2 ** 20),
    guestUsedMiB: Math.round(guestUsedMiB),
    guestTouchedMiB: Math.round(guestTouchedMiB),
    ramOverUsed: r3(listed.memoryFileBytes / 2 ** 20 / guestUsedMiB),
  };
}

const ok = (v: number, goal: number) => (v <= goal ? 'meets' : 'misses');
function printSnapshot(sn: Awaited<ReturnType<typeof snapshotOf>>): void {
  console.log(`  snapshot create: paused ${sn.pausedMs} ms (goal <= 100: ${ok(sn.pausedMs, 100)}), ${sn.createMs} ms in all; RAM ${sn.ramOnDiskMiB} MiB on disk, disk layer ${sn.diskLayerMiB} MiB;`);
  console.log(`    guest used ${sn.guestUsedMiB} MiB (touched ${sn.guestTouchedMiB} MiB): RAM/used ${sn.ramOverUsed} (goal <= 1.2: ${ok(sn.ramOverUsed, 1.2)})`);
}

/** `--only snapshot`: part 4 alone, then one clone of the snapshot runs an exec. */
async function onlySnapshot(): Promise<void> {
  const VM = `bench-src-${process.pid}`;
  const mem = values.mem ? ['--mem', values.mem] : [];
  // busybox images get the bench's httpd; any other image runs its own command.
  const cmd = image.startsWith('localhost/bb') ? ['--', ...HTTPD] : [];
  const src = start(['podman', 'run', '--name', VM, '--stop-timeout', '1', '--no-snapshot', ...mem, image, ...cmd]);
  procs.push(src);
  await waitHealthy(VM, src);
  if (cmd.length > 0) await firstExec(VM, src, performance.now());
  const sn = await snapshotOf(VM);
  await stop([src]);
  const clone = await run(['snapshot', 'run', '--snapshot', TAG, '--exec', 'echo clone-ok']);
  if (clone.code !== 0 || !clone.out.includes('clone-ok')) throw new Error(`a clone of the snapshot failed: ${clone.err}`);
  console.log(`snapshot of ${image}${values.mem ? ` (${values.mem} MiB)` : ''}; a clone ran an exec in ${Math.round(clone.ms)} ms:`);
  printSnapshot(sn);
  if (values.json) writeFileSync(values.json, JSON.stringify({ bench: 'fast-start', only: 'snapshot', image, snapshot: sn, cloneExecMs: Math.round(clone.ms) }, null, 2) + '\n');
}

try {
  if (values.only === 'snapshot') {
    await onlySnapshot();
  } else await all();
} finally {
  await stop([...procs, ...(serve ? [serve] : [])]);
  await run(['snapshots', 'delete', TAG]);
}

/** Every part, in one run. */
async function all(): Promise<void> {
  // The startup snapshot the cached runs use.
  const prep = await run(['podman', 'prepare', image]);
  if (prep.code !== 0) throw new Error(`prepare failed: ${prep.err}`);
  console.log(`prepare: ${prep.out.trim()}`);

  // 1. Cold against cached, alternating, each until its first successful exec.
  const s = { cold: [] as number[], cached: [] as number[], cloneFile: [] as number[], cloneServe: [] as number[], clonePool: [] as number[], exec: [] as number[], nsenter: [] as number[] };
  for (let i = 0; i < runs; i++) {
    for (const kind of ['cold', 'cached'] as const) {
      const name = `bench-${kind}-${process.pid}-${i}`;
      const t0 = performance.now();
      const p = start(['podman', 'run', '--name', name, '--stop-timeout', '1', ...(kind === 'cold' ? ['--no-snapshot'] : []), image, '--', ...HTTPD]);
      s[kind].push(await firstExec(name, p, t0));
      await stop([p]);
    }
  }
  if (values.only === 'start') {
    const cold = median(s.cold);
    const cached = median(s.cached);
    console.log(`start, ${image}, medians of ${runs}: cold ${Math.round(cold)} ms, startup-snapshot hit ${Math.round(cached)} ms (${r3(cached / cold)} of cold; goal <= 0.3: ${ok(cached / cold, 0.3)})`);
    if (values.json) writeFileSync(values.json, JSON.stringify({ bench: 'fast-start', only: 'start', image, runs, samples: { cold: s.cold, cached: s.cached } }, null, 2) + '\n');
    return;
  }

  // A running VM: exec latency, then its snapshot (pause, sizes) for the clones.
  const VM = `bench-src-${process.pid}`;
  const src = start(['podman', 'run', '--name', VM, '--stop-timeout', '1', '--no-snapshot', image, '--', ...HTTPD]);
  procs.push(src);
  await waitHealthy(VM, src);
  await firstExec(VM, src, performance.now());
  await run(['exec', VM, '--', 'true']);
  const inGuest = 'p=$(cat /run/fcvm/container.pid); s=$(date +%s%N); nsenter -t $p -a true; e=$(date +%s%N); echo $(( (e-s)/1000 ))';
  for (let i = 0; i < execs; i++) {
    const h = await run(['exec', VM, '--', 'true']);
    if (h.code !== 0) throw new Error(`fcvm exec failed: ${h.err}`);
    s.exec.push(h.ms);
    const g = await run(['exec', VM, '--vm', '--', 'sh', '-c', inGuest]);
    if (g.code !== 0) throw new Error(`in-guest nsenter failed: ${g.err}`);
    s.nsenter.push(Number(g.out.trim()) / 1000);
  }
  const snapshot = await snapshotOf(VM);
  await stop([src]);

  // 2. Clones with --exec: from the files, and through a memory server.
  serve = start(['snapshot', 'serve', TAG]);
  for (let i = 0; ; i++) {
    const r = await run(['snapshot', 'ls', '--json']);
    if ((JSON.parse(r.out || '[]') as { pid: number }[]).some((x) => x.pid === serve!.pid)) break;
    if (dead(serve) || i > 600) throw new Error('snapshot serve did not come up');
    await sleep(100);
  }
  let stepLog = '';
  for (let i = 0; i < runs; i++) {
    const f = await run(['snapshot', 'run', '--snapshot', TAG, '--exec', 'cat /www/index.html']);
    if (f.code !== 0 || !f.out.includes('hello')) throw new Error(`snapshot run --snapshot failed: ${f.err}`);
    s.cloneFile.push(f.ms);
    const v = await run(['snapshot', 'run', '--pid', String(serve.pid), '--exec', 'cat /www/index.html'], i === 0 ? { ...process.env, FCVM_LOG: 'debug' } : process.env);
    if (v.code !== 0 || !v.out.includes('hello')) throw new Error(`snapshot run --pid failed: ${v.err}`);
    s.cloneServe.push(v.ms);
    if (i === 0) stepLog = v.err.split('\n').filter((l) => / step \S+ done /.test(l)).map((l) => l.replace(/^\[[^\]]*\] DEBUG: /, '')).join('\n');
  }

  await stop([serve]);
  serve = undefined;

  // 3. Clones with --exec from a pool of one, each taken once the pool is full again.
  let poolOut = '';
  const pooled = spawn(process.execPath, [cli, 'snapshot', 'serve', TAG, '--pool', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  exited.set(pooled, new Promise((r) => pooled.once('exit', () => r())));
  serve = pooled;
  pooled.stderr!.on('data', (d) => (poolOut += d));
  const lastReady = () => Number([...poolOut.matchAll(/(\d+) (?:clone\(s\) )?ready/g)].pop()?.[1] ?? 0);
  let poolError: string | undefined;
  try {
    for (let i = 0; i < runs; i++) {
      for (let w = 0; lastReady() < 1; w++) {
        if (dead(pooled) || w > 3000) throw new Error(`the pool did not fill: ${poolOut}`);
        await sleep(100);
      }
      const handedBefore = (poolOut.match(/handed out/g) ?? []).length;
      const v = await run(['snapshot', 'run', '--pid', String(pooled.pid), '--exec', 'cat /www/index.html']);
      if (v.code !== 0 || !v.out.includes('hello')) throw new Error(`snapshot run --pid (pool) failed: ${v.err}`);
      if ((poolOut.match(/handed out/g) ?? []).length !== handedBefore + 1) throw new Error('the clone did not come from the pool');
      s.clonePool.push(v.ms);
    }
  } catch (e) {
    poolError = (e as Error).message.split('\n')[0];
  }

  const cold = median(s.cold);
  const result = {
    bench: 'fast-start',
    image,
    runs,
    coldRunToExecMs: Math.round(cold),
    cachedRunToExecMs: Math.round(median(s.cached)),
    cachedOverCold: r3(median(s.cached) / cold),
    cloneExecFromFilesMs: Math.round(median(s.cloneFile)),
    cloneExecFromServerMs: Math.round(median(s.cloneServe)),
    cloneOverCold: r3(median(s.cloneServe) / cold),
    cloneExecFromPoolMs: poolError ? poolError : Math.round(median(s.clonePool)),
    pooledOverCold: poolError ? NaN : r3(median(s.clonePool) / cold),
    fcvmExecMs: Math.round(median(s.exec)),
    guestNsenterMs: r3(median(s.nsenter)),
    execOverNsenter: r3(median(s.exec) / median(s.nsenter)),
    snapshot,
    goals: { cachedOverCold: 0.3, cloneOverCold: 0.05, pooledOverCold: 0.02, execOverNsenter: 1.5, pausedMs: 100, ramOverUsed: 1.2 },
    samples: s,
    cloneStepLog: stepLog,
  };
  console.log(`fast start, ${image}, medians of ${runs} (exec: ${execs}):`);
  console.log(`  cold podman run until an exec succeeds:          ${result.coldRunToExecMs} ms`);
  console.log(`  startup-snapshot hit until an exec succeeds:     ${result.cachedRunToExecMs} ms  (${result.cachedOverCold} of cold; goal <= 0.3: ${ok(result.cachedOverCold, 0.3)})`);
  console.log(`  snapshot run --exec, from the files:             ${result.cloneExecFromFilesMs} ms`);
  console.log(`  snapshot run --exec, through a memory server:    ${result.cloneExecFromServerMs} ms  (${result.cloneOverCold} of cold; goal <= 0.05: ${ok(result.cloneOverCold, 0.05)})`);
  console.log(`  snapshot run --exec, from a pool:                ${result.cloneExecFromPoolMs} ms  (${result.pooledOverCold} of cold; goal <= 0.02: ${ok(result.pooledOverCold, 0.02)})`);
  console.log(`  fcvm exec VM -- true:                            ${result.fcvmExecMs} ms`);
  console.log(`  nsenter -a into the container, in the guest:     ${result.guestNsenterMs} ms  (fcvm exec is ${result.execOverNsenter}x; goal <= 1.5: ${ok(result.execOverNsenter, 1.5)})`);
  printSnapshot(result.snapshot);
  console.log(`  one clone's steps (snapshot run --pid ... --exec):\n${stepLog.replace(/^/gm, '    ')}`);
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
}
