/**
 * bench/cold-boot: `fcvm podman run IMAGE -- true` against the floor, a hand-written QEMU
 * command with the same kernel, rootfs, image archive and VM size that runs the same
 * container with no agent, and against `fcvm podman run --no-jail` (what the VMM's jail
 * costs). Runs alternate, so all see the same machine. Prints medians and the ratios;
 * `--json FILE` writes the samples.
 *
 *   node dist/bench/cold-boot.js [--runs 5] [--image localhost/bb] [--json out.json]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultBaseDir, layoutFor } from '../src/setup/layout.js';
import { MICROVM_FIRMWARE } from '../src/vmm/qemu/command.js';
import { hostTscKhz } from '../src/vmm/host-tsc.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, image: { type: 'string', default: 'localhost/bb' }, json: { type: 'string' } } });
const runs = Number(values.runs);
const layout = layoutFor(defaultBaseDir());
const manifest = JSON.parse(readFileSync(layout.manifest, 'utf8'));
const cli = resolve('dist/fcvm.mjs');

function time(cmd: string, args: string[], check: (code: number | null, out: string) => void): Promise<number> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => {
      const ms = performance.now() - t0;
      try {
        check(code, out);
        res(ms);
      } catch (e) {
        rej(e);
      }
    });
  });
}

// The floor's initrd: fcvm's initrd with its stage 2 replaced by bench/floor-stage2,
// appended as a second cpio archive (the kernel unpacks both; later files win).
const work = mkdtempSync(join(tmpdir(), 'fcvm-bench-'));
const tree = join(work, 'tree');
execFileSync('mkdir', ['-p', join(tree, 'fcvm')]);
execFileSync('cp', [resolve('bench/floor-stage2'), join(tree, 'fcvm', 'stage2')]);
execFileSync('sh', ['-c', `cd "${tree}" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0 > ../overlay.cpio && cat "${manifest.initrd.path}" ../overlay.cpio > ../floor-initrd.cpio`]);
const imageId = execFileSync('podman', ['image', 'inspect', '--format', '{{.Id}}', values.image!]).toString().trim();
// One fcvm run first exports the image into fcvm's cache (and warms the page cache).
await time('node', [cli, 'podman', 'run', '--no-snapshot', values.image!, '--', 'true'], () => {});
const archive = join(layout.imageCache, `${imageId}.tar`);
const khz = hostTscKhz();
const floorArgs = [
  '-M', 'microvm,acpi=on', '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', '2', '-m', '512M',
  '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio', '-bios', MICROVM_FIRMWARE,
  '-kernel', manifest.kernel.path, '-initrd', join(work, 'floor-initrd.cpio'),
  '-append', `console=ttyS0 reboot=t panic=-1 quiet random.trust_cpu=on${khz ? ` tsc_early_khz=${khz}` : ''} floor.image=${imageId}`,
  '-drive', `file=${manifest.rootfs.path},format=raw,if=none,id=root,snapshot=on`, '-device', 'virtio-blk-device,drive=root',
  '-drive', `file=${archive},format=raw,if=none,id=img,readonly=on`, '-device', 'virtio-blk-device,drive=img',
];

const samples = { fcvm: [] as number[], noJail: [] as number[], floor: [] as number[] };
const fcvmRun = (extra: string[]) => time('node', [cli, 'podman', 'run', '--no-snapshot', ...extra, values.image!, '--', 'true'], (code, out) => {
  if (code !== 0) throw new Error(`fcvm run failed (${code}):\n${out.slice(-2000)}`);
});
for (let i = 0; i < runs; i++) {
  samples.floor.push(await time('qemu-system-x86_64', floorArgs, (_, out) => {
    if (!out.includes('FLOOR_EXIT=0')) throw new Error(`floor run failed:\n${out.slice(-2000)}`);
  }));
  // Jailed and unjailed take turns going first, so neither always follows the floor.
  if (i % 2 === 0) {
    samples.fcvm.push(await fcvmRun([]));
    samples.noJail.push(await fcvmRun(['--no-jail']));
  } else {
    samples.noJail.push(await fcvmRun(['--no-jail']));
    samples.fcvm.push(await fcvmRun([]));
  }
  const s = (xs: number[]) => `${(xs.at(-1)! / 1000).toFixed(2)}s`;
  process.stderr.write(`run ${i + 1}/${runs}: floor ${s(samples.floor)}, fcvm ${s(samples.fcvm)}, fcvm --no-jail ${s(samples.noJail)}\n`);
}
rmSync(work, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const result = {
  bench: 'cold-boot',
  image: values.image,
  runs,
  floorMedianMs: Math.round(median(samples.floor)),
  fcvmMedianMs: Math.round(median(samples.fcvm)),
  noJailMedianMs: Math.round(median(samples.noJail)),
  ratio: Number((median(samples.fcvm) / median(samples.floor)).toFixed(3)),
  goal: 1.3,
  jailCost: Number((median(samples.fcvm) / median(samples.noJail) - 1).toFixed(3)),
  jailCostGoal: 0.03,
  samples,
};
console.log(`cold boot, ${runs} runs each, alternating (median):`);
console.log(`  floor (hand-written QEMU, same kernel/rootfs/image): ${(result.floorMedianMs / 1000).toFixed(2)} s`);
console.log(`  fcvm podman run:                                   ${(result.fcvmMedianMs / 1000).toFixed(2)} s`);
console.log(`  fcvm podman run --no-jail:                         ${(result.noJailMedianMs / 1000).toFixed(2)} s`);
console.log(`  ratio fcvm/floor: ${result.ratio} (goal <= ${result.goal})`);
console.log(`  jail cost: ${(result.jailCost * 100).toFixed(1)} % (goal < ${result.jailCostGoal * 100} %)`);
if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
