/**
 * bench/start-loop: many cold `fcvm podman run`s in a row, counting the ones that never
 * start their container (the start hang of issue 10). A start that has not finished after
 * `--stall` seconds is a hang (the run's --boot-timeout is 30 s less, so the supervisor's own
 * start timeout, with the guest console, comes first): the guest's processes and fcvm's files in it are dumped
 * (through `fcvm exec --vm`) before the run is stopped. Prints time-to-exit p50/p90/max.
 *
 * With `--long`, the container runs until stopped (as most real ones do): a start counts
 * once `fcvm ls` shows the VM healthy, then the run is stopped with SIGTERM.
 *
 *   node dist/bench/start-loop.js [--runs 100] [--parallel 1] [--stall 60] [--long] [--image localhost/bb] [--dump-dir DIR] [--json out.json]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100' },
    parallel: { type: 'string', default: '1' },
    stall: { type: 'string', default: '60' },
    image: { type: 'string', default: 'localhost/bb' },
    long: { type: 'boolean', default: false },
    'dump-dir': { type: 'string', default: '/tmp/fcvm-start-loop' },
    json: { type: 'string' },
  },
});
const runs = Number(values.runs);
const parallel = Number(values.parallel);
const stallMs = Number(values.stall) * 1000;
const dumpDir = values['dump-dir']!;
const cli = resolve('dist/fcvm.mjs');
mkdirSync(dumpDir, { recursive: true });

function fcvm(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => (clearTimeout(t), res({ code, out })));
  });
}

/** What the guest was doing: its processes, fcvm's run files, podman's view. */
const DUMP = [
  'B=/run/fcvm/busybox',
  '$B ps -o pid,ppid,stat,args',
  'echo "--- /run/fcvm"; ls -la /run/fcvm',
  'echo "--- prefetch"; cat /run/fcvm/image-load.log /run/fcvm/image-load.rc 2>&1',
  'echo "--- podman ps"; timeout 20 podman ps -a 2>&1',
  'echo "--- uptime"; cat /proc/uptime /proc/loadavg',
].join('; ');

interface Sample {
  i: number;
  ms: number;
  code: number | null;
  hang: boolean;
}

async function one(i: number): Promise<Sample> {
  const name = `start-loop-${process.pid}-${i}`;
  const t0 = performance.now();
  const command = values.long ? 'echo started; exec sleep 100000' : 'echo started; exit 7';
  // The supervisor's own start timeout comes before the stall, so its error (with the
  // guest console) is in the dump; its debug log says which events it got and when.
  const bootTimeout = Math.max(10, Math.floor(stallMs / 1000) - 30);
  const p = spawn(process.execPath, [cli, 'podman', 'run', '--no-snapshot', '--name', name, '--boot-timeout', String(bootTimeout), '--stop-timeout', '2', values.image!, '--', 'sh', '-c', command], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FCVM_LOG: 'debug' },
  });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  let hang = false;
  const stall = setTimeout(async () => {
    hang = true;
    const dump = await fcvm(['exec', name, '--vm', '--', 'sh', '-c', DUMP], 60_000);
    writeFileSync(join(dumpDir, `${name}.txt`), `${out}\n--- guest\n${dump.out}`);
    p.kill('SIGTERM');
  }, stallMs);
  let ms = 0;
  if (values.long) {
    // Healthy in `fcvm ls`: the agent saw the container start.
    let last = '';
    for (;;) {
      const ls = await fcvm(['ls', '--json']);
      const vm = (JSON.parse(ls.code === 0 ? ls.out : '[]') as { name: string; status: string }[]).find((v) => v.name === name);
      const seen = ls.code === 0 ? `status ${vm?.status ?? 'absent'}` : `ls exited ${ls.code}: ${ls.out.trim().split('\n').pop()}`;
      if (seen !== last) out += `[start-loop ${((performance.now() - t0) / 1000).toFixed(1)} s] ${(last = seen)}\n`;
      if (vm?.status === 'healthy') break;
      if (p.exitCode !== null || hang) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    ms = performance.now() - t0;
    if (!hang) p.kill('SIGTERM');
  }
  const code = await exited;
  clearTimeout(stall);
  ms ||= performance.now() - t0;
  const ok = values.long ? !hang && code === 143 : code === 7 && /^started$/m.test(out);
  if (!ok && !hang) writeFileSync(join(dumpDir, `${name}.txt`), out);
  process.stderr.write(`start ${i + 1}/${runs}: ${ok ? 'ok' : hang ? 'HANG' : `FAILED (exit ${code})`} in ${(ms / 1000).toFixed(1)} s\n`);
  return { i, ms, code, hang: hang || !ok };
}

const samples: Sample[] = [];
let next = 0;
await Promise.all(Array.from({ length: parallel }, async () => {
  while (next < runs) samples.push(await one(next++));
}));
const times = samples.filter((s) => !s.hang).map((s) => s.ms).sort((a, b) => a - b);
const pct = (p: number) => Math.round(times[Math.min(times.length - 1, Math.ceil((p / 100) * times.length) - 1)] ?? NaN);
const result = {
  bench: 'start-loop',
  runs,
  parallel,
  failed: samples.filter((s) => s.hang).length,
  exitMs: { p50: pct(50), p90: pct(90), max: pct(100) },
  dumps: dumpDir,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
if (values.json) writeFileSync(values.json, JSON.stringify({ ...result, samples }, null, 2));
process.exitCode = result.failed > 0 ? 1 : 0;
