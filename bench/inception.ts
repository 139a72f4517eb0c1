/**
 * bench/inception: what a VM inside a VM costs, in one run.
 *
 *   outer cold start  `fcvm podman run --kernel-profile nested IMAGE -- true` on this host
 *                     (TCG here), end to end, and the time until its container started
 *   inner cold start  the same `fcvm podman run IMAGE -- true` run by the inner fcvm in
 *                     the outer guest, on the guest's KVM (timed inside the guest)
 *   inner clone       `fcvm snapshot run --pid SERVE --exec true` there, from a snapshot
 *                     of an inner VM, against the inner cold start (alternating runs)
 *
 *   node dist/bench/inception.js [--runs 3] [--image localhost/bb] [--json out.json]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultBaseDir, layoutFor } from '../src/setup/layout.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, image: { type: 'string', default: 'localhost/bb' }, json: { type: 'string' } } });
const runs = Number(values.runs);
const image = values.image!;
const layout = layoutFor(defaultBaseDir());
const cli = resolve('dist/fcvm.mjs');
const OUTER = 'bench-outer';

interface Done { code: number | null; out: string; ms: number }

function run(args: string[]): Promise<Done> {
  return new Promise((res) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => res({ code, out, ms: performance.now() - t0 }));
  });
}

function must(d: Done, what: string): Done {
  if (d.code !== 0) throw new Error(`${what} failed (exit ${d.code}): ${d.out.slice(-1500)}`);
  return d;
}

/** Runs a shell command in the outer guest OS. */
const inVm = (sh: string) => run(['exec', OUTER, '--vm', '--', 'sh', '-c', sh]);

/** Times a command inside the outer guest with the guest's own clock (no exec overhead). */
async function timedInVm(cmd: string): Promise<number> {
  const d = must(await inVm(`a=$(date +%s%N); ${cmd} > /tmp/bench.log 2>&1 || { tail -5 /tmp/bench.log; exit 1; }; b=$(date +%s%N); echo $(( (b - a) / 1000000 ))`), cmd);
  return Number(d.out.trim().split('\n').pop());
}

const stateOf = (name: string) => {
  try {
    return JSON.parse(readFileSync(join(layout.vmState, `${name}.json`), 'utf8')) as { status: string };
  } catch {
    return undefined;
  }
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// Outer cold start: end to end, alternating with nothing (it is the slow one).
const outerRuns: number[] = [];
for (let i = 0; i < runs; i++) outerRuns.push(must(await run(['podman', 'run', '--kernel-profile', 'nested', '--privileged', image, '--', 'true']), 'outer run').ms);

// The outer VM the inner runs use, and its time until the container started.
const t0 = performance.now();
// The outer fcvm's own output (debug level) is kept until the end: a failure shows its tail.
const logDir = mkdtempSync(join(tmpdir(), 'fcvm-bench-inception-'));
const outerLog = join(logDir, 'outer.log');
const logFd = openSync(outerLog, 'w');
const outer = spawn(process.execPath, [cli, '--log-level', 'debug', 'podman', 'run', '--name', OUTER, '--kernel-profile', 'nested', '--privileged', '--mem', '3072', image, '--', 'sleep', '1000000'], { stdio: ['ignore', logFd, logFd] });
let outerHealthyMs = 0;
try {
  for (;;) {
    if (stateOf(OUTER)?.status === 'healthy') break;
    if (outer.exitCode !== null) throw new Error(`the outer VM exited with ${outer.exitCode}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  outerHealthyMs = performance.now() - t0;
  // A first inner run probes KVM (cached) and exports the image; it is not counted.
  await timedInVm(`fcvm podman run --network none ${image} -- true`);
  must(await inVm(`fcvm podman run --name src --network none ${image} -- sleep 1000000 > /tmp/src.log 2>&1 < /dev/null &`), 'start src');
  for (;;) {
    const ls = must(await run(['exec', OUTER, '--vm', '--', 'fcvm', 'ls', '--json']), 'ls');
    if ((JSON.parse(ls.out.slice(ls.out.indexOf('['))) as { name: string; status: string }[]).some((v) => v.name === 'src' && v.status === 'healthy')) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  must(await inVm('fcvm snapshot create src --tag bench-kvm'), 'snapshot');
  must(await inVm('fcvm snapshot serve bench-kvm > /tmp/serve.log 2>&1 < /dev/null &'), 'serve');
  let servePid = 0;
  while (!servePid) {
    const ls = await inVm('fcvm snapshot ls --json');
    servePid = (JSON.parse(ls.out.slice(ls.out.indexOf('[')) || '[]') as { pid: number }[])[0]?.pid ?? 0;
    if (!servePid) await new Promise((r) => setTimeout(r, 1000));
  }
  const cold: number[] = [];
  const clone: number[] = [];
  for (let i = 0; i < runs; i++) {
    cold.push(await timedInVm(`fcvm podman run --network none ${image} -- true`));
    clone.push(await timedInVm(`fcvm snapshot run --pid ${servePid} --exec true`));
  }
  const result = {
    outerColdMs: median(outerRuns), outerHealthyMs,
    innerColdMs: median(cold), innerCloneMs: median(clone), ratio: median(clone) / median(cold),
    samples: { outer: outerRuns, cold, clone },
  };
  process.stdout.write([
    `outer cold start (TCG here, podman run -- true):  ${s(result.outerColdMs)}  (container started after ${s(outerHealthyMs)})`,
    `inner cold start (KVM in the outer guest):        ${s(result.innerColdMs)}`,
    `inner clone --exec true (KVM, from a server):     ${s(result.innerCloneMs)}`,
    `inner clone / inner cold start:                   ${result.ratio.toFixed(2)}`,
    '',
  ].join('\n'));
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
  await inVm(`kill ${servePid}; fcvm ls --json >/dev/null`);
} catch (e) {
  const tail = readFileSync(outerLog, 'utf8').split('\n').slice(-40).join('\n');
  process.stderr.write(`the outer VM's fcvm log (${outerLog}) ends with:\n${tail}\n`);
  process.exitCode = 1;
  throw e;
} finally {
  if (outer.exitCode === null) {
    outer.kill('SIGTERM');
    await new Promise((r) => outer.once('exit', r));
  }
  if (!process.exitCode) rmSync(logDir, { recursive: true, force: true });
}
