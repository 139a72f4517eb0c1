/**
 * bench/exec-latency: `fcvm exec VM -- true` from the host against the guest's own cost
 * of the same `podman exec VM true`, timed inside the guest, in alternating batches of
 * one run. Prints p50/p99 of both and the overhead ratio; `--json FILE` keeps the samples.
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
  const host: number[] = [];
  const guest: number[] = [];
  const inGuest = 's=$(date +%s%N); podman exec ' + VM + ' true; e=$(date +%s%N); echo $(( (e-s)/1000 ))';
  for (let i = 0; i < runs; i++) {
    const h = await runFcvm(['exec', VM, '--', 'true']);
    if (h.code !== 0) throw new Error(`fcvm exec failed: ${h.all}`);
    host.push(h.ms);
    const g = await runFcvm(['exec', VM, '--vm', '--', 'bash', '-c', inGuest]);
    if (g.code !== 0) throw new Error(`in-guest podman exec failed: ${g.all}`);
    guest.push(Number(g.out.trim()) / 1000);
  }
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
  const result = {
    bench: 'exec-latency',
    runs,
    fcvmExec: { p50Ms: Math.round(pct(host, 50)), p99Ms: Math.round(pct(host, 99)) },
    guestPodmanExec: { p50Ms: Math.round(pct(guest, 50)), p99Ms: Math.round(pct(guest, 99)) },
    overheadRatioP50: Number((pct(host, 50) / pct(guest, 50)).toFixed(3)),
    overheadRatioP99: Number((pct(host, 99) / pct(guest, 99)).toFixed(3)),
    goal: 1.25,
    samples: { host, guest },
  };
  console.log(`exec latency, ${runs} runs each, alternating:`);
  console.log(`  fcvm exec VM -- true (host, end to end): p50 ${result.fcvmExec.p50Ms} ms, p99 ${result.fcvmExec.p99Ms} ms`);
  console.log(`  podman exec VM true (inside the guest):  p50 ${result.guestPodmanExec.p50Ms} ms, p99 ${result.guestPodmanExec.p99Ms} ms`);
  console.log(`  overhead ratio: p50 ${result.overheadRatioP50}, p99 ${result.overheadRatioP99} (goal <= ${result.goal})`);
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
} finally {
  supervisor.kill('SIGTERM');
  await new Promise((r) => supervisor.on('exit', r));
}
