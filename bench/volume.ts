/**
 * bench/volume: a --map volume against the guest's own root disk, in one run, inside one
 * VM (the container sees both: /vol is the volume, /bench-disk is on its root disk).
 *   metadata: create, stat and unlink of 2,000 small files (ops/s);
 *   sequential: write 512 MiB (fsync included), then read it after the guest's caches
 *               are dropped (MB/s); then 4 parallel readers of a quarter each.
 * The workload is test/fixtures/volprobe.c (static, run from the volume). Prints each
 * figure, the volume/disk ratio and the goal (metadata within 3x, throughput >= 50 %).
 *
 *   node dist/bench/volume.js [--runs 2] [--mib 512] [--files 2000] [--json out.json]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { volprobe } from '../test/volprobe.js';

const { values } = parseArgs({ options: {
  runs: { type: 'string', default: '2' }, mib: { type: 'string', default: '512' }, files: { type: 'string', default: '2000' },
  json: { type: 'string' }, image: { type: 'string', default: 'localhost/bb' },
} });
const runs = Number(values.runs);
const cli = resolve('dist/fcvm.mjs');
const NAME = `bench-vol-${process.pid}`;

function fcvm(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [cli, ...args], { maxBuffer: 16 << 20 }, (e, out, err) => res({ code: e ? Number(e.code ?? 1) : 0, out, err }));
  });
}

async function inGuest(cmd: string, vm = false): Promise<string> {
  const r = await fcvm(['exec', NAME, ...(vm ? ['--vm'] : []), '--', 'sh', '-c', cmd]);
  if (r.code !== 0) throw new Error(`"${cmd}" failed (${r.code}): ${r.err}${r.out}`);
  return r.out;
}

const num = (out: string, key: string) => Number(new RegExp(`${key}=([\\d.]+)`).exec(out)?.[1] ?? NaN);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Figures = { create: number; stat: number; unlink: number; write: number; read: number; read4: number };

async function measure(dir: string): Promise<Figures> {
  const dropCaches = () => inGuest('sync; echo 3 > /proc/sys/vm/drop_caches', true);
  const meta = await inGuest(`/vol/volprobe meta ${dir}/meta ${values.files} && rmdir ${dir}/meta`);
  const write = await inGuest(`/vol/volprobe write ${dir}/seq ${values.mib}`);
  await dropCaches();
  const read = await inGuest(`/vol/volprobe read ${dir}/seq 1`);
  await dropCaches();
  const read4 = await inGuest(`/vol/volprobe read ${dir}/seq 4`);
  await inGuest(`rm -f ${dir}/seq`);
  return { create: num(meta, 'create'), stat: num(meta, 'stat'), unlink: num(meta, 'unlink'), write: num(write, 'MBps'), read: num(read, 'MBps'), read4: num(read4, 'MBps') };
}

async function main(): Promise<void> {
  const probe = volprobe();
  if (!probe.path) throw new Error(probe.why);
  const host = mkdtempSync(join(tmpdir(), 'fcvm-bench-vol-'));
  chmodSync(host, 0o755);
  copyFileSync(probe.path, join(host, 'volprobe'));
  let vm: ChildProcess | undefined;
  const statsFile = join(host, '..', `${NAME}-stats.json`);
  let result: Record<string, { disk: number; volume: number; ratio: number }> = {};
  try {
    vm = spawn(process.execPath, [cli, 'podman', 'run', '--name', NAME, '--network', 'none', '--map', `${host}:/vol`, values.image!, '--', 'sleep', '100000'], {
      stdio: 'ignore',
      env: { ...process.env, FCVM_VOLUME_STATS: statsFile },
    });
    const t0 = Date.now();
    while ((await fcvm(['exec', NAME, '--', 'true'])).code !== 0) {
      if (vm.exitCode !== null || Date.now() - t0 > 300_000) throw new Error('the VM did not start');
      await new Promise((r) => setTimeout(r, 1000));
    }
    await inGuest('mkdir -p /bench-disk');
    const samples: { disk: Figures; volume: Figures }[] = [];
    for (let i = 0; i < runs; i++) {
      const disk = await measure('/bench-disk');
      const volume = await measure('/vol');
      samples.push({ disk, volume });
      process.stderr.write(`run ${i + 1}: disk ${JSON.stringify(disk)}\n       volume ${JSON.stringify(volume)}\n`);
    }
    const rows: [keyof Figures, string, string, number][] = [
      ['create', 'create', 'ops/s', 1 / 3], ['stat', 'stat', 'ops/s', 1 / 3], ['unlink', 'unlink', 'ops/s', 1 / 3],
      ['write', `write ${values.mib} MiB`, 'MB/s', 0.5], ['read', `read ${values.mib} MiB (cold guest cache)`, 'MB/s', 0.5], ['read4', '4 parallel readers', 'MB/s', 0.5],
    ];
    result = {};
    process.stdout.write(`bench/volume (${runs} runs, medians; guest disk = the container's root on virtio-blk)\n`);
    for (const [key, label, unit, goal] of rows) {
      const disk = median(samples.map((s) => s.disk[key]));
      const vol = median(samples.map((s) => s.volume[key]));
      const ratio = vol / disk;
      result[key] = { disk, volume: vol, ratio };
      process.stdout.write(`${label.padEnd(36)} disk ${disk.toFixed(0).padStart(8)} ${unit}  volume ${vol.toFixed(0).padStart(8)} ${unit}  volume/disk ${ratio.toFixed(2)}  (goal >= ${goal.toFixed(2)}: ${ratio >= goal ? 'met' : 'NOT met'})\n`);
    }
    if (values.json) writeFileSync(values.json, JSON.stringify({ result, samples }, null, 2));
  } finally {
    vm?.kill('SIGTERM');
    await new Promise((r) => (vm && vm.exitCode === null ? vm.once('exit', r) : r(undefined)));
    rmSync(host, { recursive: true, force: true });
  }
  // Where the time goes: the host's own time per request against the guest's time per operation.
  try {
    const stats = JSON.parse(readFileSync(statsFile, 'utf8')) as Record<string, { count: number; meanUs: number }>;
    rmSync(statsFile, { force: true });
    process.stdout.write('host server time per request (mean), against the guest\'s time per operation on the volume:\n');
    for (const [op, s] of Object.entries(stats).sort((a, b) => b[1].count - a[1].count)) process.stdout.write(`  ${op.padEnd(12)} ${String(s.count).padStart(8)} requests  ${String(s.meanUs).padStart(6)} us\n`);
    const per = (k: string) => (result[k] ? `${(1e6 / result[k]!.volume).toFixed(0)} us` : '?');
    process.stdout.write(`  guest: create ${per('create')}, stat ${per('stat')}, unlink ${per('unlink')} per operation\n`);
  } catch {
    process.stdout.write('(no host-side request statistics)\n');
  }
}

main().catch((e) => {
  process.stderr.write(`bench/volume: ${(e as Error).message}\n`);
  process.exit(1);
});
