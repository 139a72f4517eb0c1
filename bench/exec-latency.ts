/**
 * bench/exec-latency: where an `fcvm exec` goes, in alternating batches of one run each:
 * - `fcvm exec VM -- true` from the host, end to end;
 * - `fcvm --version`: the host CLI's own start, the floor of any fcvm command;
 * - timed inside the guest: `nsenter -a` into the container (the floor of entering it),
 *   `crun exec` (what each exec cost before the exec spawner) and `podman exec`.
 * Prints p50/p99 of each and the ratios; `--json FILE` keeps the samples.
 *
 *   node dist/bench/exec-latency.js [--runs 20] [--image localhost/bb] [--json out.json]
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runFcvm } from './timed-run.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, image: { type: 'string', default: 'localhost/bb' }, json: { type: 'string' } } });
const runs = Number(values.runs);
const cli = resolve('dist/fcvm.mjs');
const VM = `bench-exec-${process.pid}`;

const supervisor = spawn(process.execPath, [cli, 'podman', 'run', '--name', VM, '--stop-timeout', '1', values.image!, '--', 'sleep', '100000'], { stdio: 'ignore' });
try {
  for (let i = 0; ; i++) {
    const ls = await runFcvm(['ls', '--json']);
    if ((JSON.parse(ls.out) as { name: string; status: string }[]).some((v) => v.name === VM && v.status === 'healthy')) break;
    if (i > 600) throw new Error('the benchmark VM did not come up');
    await new Promise((r) => setTimeout(r, 200));
  }
  // Warm both paths once.
  await runFcvm(['exec', VM, '--', 'true']);
  const s = { fcvmExec: [] as number[], cliStart: [] as number[], nsenter: [] as number[], crunExec: [] as number[], podmanExec: [] as number[] };
  // Inside the guest, one shell times the three ways in, in microseconds.
  const timed = (cmd: string) => `s=$(date +%s%N); ${cmd} >/dev/null; e=$(date +%s%N); echo -n "$(( (e-s)/1000 )) "`;
  const inGuest = `id=$(cat /run/fcvm/container.cid); p=$(cat /run/fcvm/container.pid); `
    + [timed('nsenter -t $p -a true'), timed('crun --root /run/crun exec $id true'), timed(`podman exec ${VM} true`)].join('; ');
  for (let i = 0; i < runs; i++) {
    const h = await runFcvm(['exec', VM, '--', 'true']);
    if (h.code !== 0) throw new Error(`fcvm exec failed: ${h.all}`);
    s.fcvmExec.push(h.ms);
    s.cliStart.push((await runFcvm(['--version'])).ms);
    const g = await runFcvm(['exec', VM, '--vm', '--', 'bash', '-c', inGuest]);
    if (g.code !== 0) throw new Error(`in-guest timing failed: ${g.all}`);
    const [ns, crun, podman] = g.out.trim().split(' ').map((us) => Number(us) / 1000);
    s.nsenter.push(ns!);
    s.crunExec.push(crun!);
    s.podmanExec.push(podman!);
  }
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
  const p50 = (xs: number[]) => pct(xs, 50);
  const row = (xs: number[]) => ({ p50Ms: Number(p50(xs).toFixed(1)), p99Ms: Number(pct(xs, 99).toFixed(1)) });
  const r3 = (x: number) => Number(x.toFixed(3));
  const result = {
    bench: 'exec-latency',
    runs,
    fcvmExec: row(s.fcvmExec),
    hostCliStart: row(s.cliStart),
    guestNsenter: row(s.nsenter),
    guestCrunExec: row(s.crunExec),
    guestPodmanExec: row(s.podmanExec),
    execOverNsenter: r3(p50(s.fcvmExec) / p50(s.nsenter)),
    execBeyondCliStartOverNsenter: r3((p50(s.fcvmExec) - p50(s.cliStart)) / p50(s.nsenter)),
    crunExecOverNsenter: r3(p50(s.crunExec) / p50(s.nsenter)),
    goal: 1.5,
    samples: s,
  };
  const line = (what: string, r: { p50Ms: number; p99Ms: number }) => console.log(`  ${what.padEnd(44)} p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`);
  console.log(`exec latency, ${runs} runs each, alternating:`);
  line('fcvm exec VM -- true (host, end to end):', result.fcvmExec);
  line('fcvm --version (the host CLI\'s own start):', result.hostCliStart);
  line('nsenter -a into the container (in guest):', result.guestNsenter);
  line('crun exec ID true (in guest; the old path):', result.guestCrunExec);
  line('podman exec VM true (in guest):', result.guestPodmanExec);
  console.log(`  fcvm exec / nsenter: ${result.execOverNsenter} (goal <= ${result.goal}); without the CLI's start: ${result.execBeyondCliStartOverNsenter}; crun exec alone / nsenter: ${result.crunExecOverNsenter}`);
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
} finally {
  supervisor.kill('SIGTERM');
  await new Promise((r) => supervisor.on('exit', r));
}
