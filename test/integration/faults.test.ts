import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI, fcvm, layout, vmsAvailable } from '../helpers.js';
import { leftoverCounts } from '../leftovers.js';

/**
 * Faults of the machine: a full disk (a small tmpfs as the base directory) during setup,
 * image export, a VM's disk growth and snapshot create; a full /dev/shm; a read-only
 * base directory; corrupt and future state files; two setups at once. Each ends in one
 * clear line (or, for /dev/shm, in a working VM) and leaves nothing partial.
 *
 * Mounts happen in a private mount namespace (unshare -m), so the host never sees them;
 * what is left inside is listed from the same namespace before it goes away.
 */
async function inMountNs(mounts: string, args: string[], inspect = ''): Promise<{ exitCode: number; stdout: string; stderr: string; inspected: string }> {
  const script = `set -e; ${mounts}; set +e; "$@" 2>/tmp/.fcvm-fault-err; rc=$?; echo "---"; ${inspect || 'true'}; cat /tmp/.fcvm-fault-err >&2; rm -f /tmp/.fcvm-fault-err; exit $rc`;
  const r = await execa('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, CLI, ...args], { reject: false, stdin: 'ignore', timeout: 300_000, env: { FCVM_NO_SNAPSHOT: '1' } });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout).split(/^---$/m)[0] ?? '', stderr: String(r.stderr), inspected: String(r.stdout).split('---\n')[1] ?? '' };
}

/** Lists what a killed or failed writer could leave half-done under DIR. */
const partials = (dir: string) => `find ${dir} \\( -name '*.partial' -o -name '*.tmp' -o -name '*.deb' -o -name 'fcvm-mem-*' \\) -print; find ${dir}/vms ${dir}/state/vms ${dir}/snapshots -mindepth 1 2>/dev/null`;

/**
 * Gives base directory B the host's artifacts without copying them: the manifest (read
 * relative to the directory it is in) and a symlink to each artifact directory.
 */
const artifactsIn = (b: string) => `mkdir -p ${b}/artifacts; cp ${layout.manifest} ${b}/artifacts/; for a in ${layout.artifacts}/*/; do ln -s "$a" ${b}/artifacts/; done`;

function oneLine(stderr: string, re: RegExp): void {
  const lines = stderr.trim().split('\n').filter((l) => !/^(setup|stress): /.test(l));
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, re);
}

test('a full disk during setup fails in one line and leaves no partial download or artifact', async (t) => {
  if (!vmsAvailable(t)) return;
  const mnt = mkdtempSync(join(tmpdir(), 'fcvm-full-'));
  try {
    const r = await inMountNs(`mount -t tmpfs -o size=8m tmpfs ${mnt}`, ['--base-dir', `${mnt}/b`, 'setup'], partials(`${mnt}/b`));
    assert.equal(r.exitCode, 125, r.stderr);
    oneLine(r.stderr, new RegExp(`^fcvm: no space left on the filesystem of ${mnt}/b while running setup step "kernel"\\. Free some space`));
    assert.equal(r.inspected.trim(), '', 'nothing partial');
  } finally {
    rmSync(mnt, { recursive: true, force: true });
  }
});

test('a full disk during the image export fails in one line before any VM boots', async (t) => {
  if (!vmsAvailable(t)) return;
  const mnt = mkdtempSync(join(tmpdir(), 'fcvm-full-'));
  try {
    const r = await inMountNs(`mount -t tmpfs -o size=1m tmpfs ${mnt}; ${artifactsIn(`${mnt}/b`)}`,
      ['--base-dir', `${mnt}/b`, 'podman', 'run', '--network', 'none', 'localhost/bb-web'], partials(`${mnt}/b`));
    assert.equal(r.exitCode, 125, r.stderr);
    oneLine(r.stderr, new RegExp(`^fcvm: no space left on the filesystem of ${mnt}/b(/cache/images while building an image store| while starting the VM)\\. Free some space`));
    assert.equal(r.inspected.trim(), '', 'nothing partial');
  } finally {
    rmSync(mnt, { recursive: true, force: true });
  }
});

test('a VM whose disk cannot grow, and a snapshot that does not fit, end in one line each and leave nothing', async (t) => {
  if (!vmsAvailable(t)) return;
  const mnt = mkdtempSync(join(tmpdir(), 'fcvm-full-'));
  try {
    // 3 MiB: the 2 MiB image archive fits, the guest's writes to its disk do not.
    let r = await inMountNs(`mount -t tmpfs -o size=3m tmpfs ${mnt}; ${artifactsIn(`${mnt}/b`)}`,
      ['--base-dir', `${mnt}/b`, 'podman', 'run', '--network', 'none', '--boot-timeout', '60', 'localhost/bb', '--', 'true'], partials(`${mnt}/b`));
    assert.equal(r.exitCode, 125, r.stderr);
    oneLine(r.stderr, /^fcvm: no space left on the filesystem of .* while (running VM ".*", whose disk .* had to grow|starting the VM|building an image store)\. Free some space/);
    assert.equal(r.inspected.trim(), '', 'nothing partial');
    // 64 MiB: the VM runs; its snapshot (a copy of its RAM) does not fit. The source lives on.
    const script = [
      `"$@" podman run --name it-full --network none localhost/bb -- sleep 600 2>/tmp/.fcvm-full-run & src=$!`,
      `for i in $(seq 600); do "$@" ls 2>/dev/null | grep -q 'it-full .* healthy' && break; kill -0 $src 2>/dev/null || break; sleep 0.5; done`,
      `"$@" snapshot create it-full --tag it-full-snap; echo "create=$?"`,
      `"$@" exec it-full -- echo still-running; kill $src; wait $src`,
      // The run's own output: its startup snapshot did not fit either, and it went on.
      `echo "run: $(cat /tmp/.fcvm-full-run)"; rm -f /tmp/.fcvm-full-run`,
    ].join('\n');
    const r2 = await execa('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
      `mount -t tmpfs -o size=64m tmpfs ${mnt}; ${artifactsIn(`${mnt}/b`)}; set -- "$@" --base-dir ${mnt}/b; ${script}; echo ---; ${partials(`${mnt}/b`)}`,
      'sh', process.execPath, CLI], { reject: false, stdin: 'ignore', all: true, timeout: 400_000 });
    const out = String(r2.all);
    // Refused before the VM pauses: a copy that filled the disk would fail the VM's own writes.
    assert.match(out, /fcvm: no space left on the filesystem of .*\/snapshots while taking snapshot "it-full-snap"\. It needs about \d+ MiB and \d+ MiB are free \(fcvm leaves 64 MiB for the VMs' disks\)\. Free some space/);
    assert.match(out, /run: fcvm: could not save startup snapshot "startup-[0-9a-f]+": no space left on the filesystem of .*\/snapshots/);
    assert.match(out, /create=125/);
    assert.match(out, /still-running/);
    assert.equal((out.split('---\n')[1] ?? '').trim(), '', `nothing partial, no snapshot: ${out}`);
  } finally {
    rmSync(mnt, { recursive: true, force: true });
  }
});

test('with /dev/shm full, guest RAM goes to the run directory and the VM runs', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await inMountNs('mount -t tmpfs -o size=1m tmpfs /dev/shm', ['podman', 'run', '--network', 'none', 'localhost/bb', '--', 'echo', 'ram-elsewhere'], 'ls /dev/shm | grep ^fcvm; true');
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(r.stdout, 'ram-elsewhere\n', r.stderr);
  assert.equal(r.inspected.trim(), '');
  const l = leftoverCounts();
  assert.equal(l.total, 0, l.detail);
});

test('a read-only base directory is refused in one line by commands that write', async (t) => {
  if (!vmsAvailable(t)) return;
  const ro = mkdtempSync(join(tmpdir(), 'fcvm-ro-'));
  try {
    for (const args of [['setup'], ['podman', 'run', '--network', 'none', 'localhost/bb', '--', 'true']]) {
      const r = await inMountNs(`mount --bind ${layout.base} ${ro}; mount -o remount,bind,ro ${ro}`, ['--base-dir', ro, ...args]);
      assert.equal(r.exitCode, 125, r.stderr);
      oneLine(r.stderr, new RegExp(`^fcvm: ${ro} is on a read-only filesystem \\(while .*\\)\\. Give fcvm a writable --base-dir`));
    }
  } finally {
    rmSync(ro, { recursive: true, force: true });
  }
});

test('a corrupt state file is reaped once old; one from a newer fcvm is left alone and refused clearly', async () => {
  const base = mkdtempSync(join(tmpdir(), 'fcvm-state-'));
  try {
    const dir = join(base, 'state', 'vms');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'broken.json'), '{"schema": 1, "na');
    writeFileSync(join(dir, 'future.json'), JSON.stringify({ schema: 99, name: 'future', pid: 1 }));
    const env = { FCVM_BASE_DIR: base };
    let r = await fcvm(['ls'], { env });
    assert.equal(r.exitCode, 0, r.stderr);
    const old = new Date(Date.now() - 3600_000);
    for (const f of ['broken.json', 'future.json']) await import('node:fs/promises').then((fs) => fs.utimes(join(dir, f), old, old));
    r = await fcvm(['ls', '--json'], { env });
    assert.equal(r.stdout.trim(), '[]');
    assert.deepEqual(readdirSync(dir), ['future.json'], 'the corrupt file is reaped, the newer fcvm\'s kept');
    r = await fcvm(['exec', 'future', '--', 'true'], { env });
    assert.equal(r.exitCode, 125);
    oneLine(r.stderr, /^fcvm: state file .*future\.json is unreadable: it was written by a newer fcvm \(state schema 99, this fcvm reads 1\)\. Use the fcvm that wrote it/);
    r = await fcvm(['podman', 'run', '--name', 'future', 'localhost/bb'], { env: { ...env } });
    assert.equal(r.exitCode, 125);
    assert.match(r.stderr, /written by a newer fcvm|not set up/);
    assert.equal(JSON.parse(readFileSync(join(dir, 'future.json'), 'utf8')).schema, 99);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('two fcvm setup at once: the second waits, both succeed, one initrd is built, nothing partial', async (t) => {
  if (!vmsAvailable(t)) return;
  const base = mkdtempSync(join(tmpdir(), 'fcvm-setup2-'));
  try {
    // The kernel and rootfs linked in (they take minutes); the initrd is built here.
    mkdirSync(join(base, 'artifacts'));
    for (const d of readdirSync(layout.artifacts).filter((d) => /^(kernel|rootfs)-/.test(d))) {
      await execa('cp', ['-al', join(layout.artifacts, d), join(base, 'artifacts', d)]);
    }
    const env = { FCVM_BASE_DIR: base };
    const [a, b] = await Promise.all([fcvm(['setup'], { env }), fcvm(['setup'], { env })]);
    assert.equal(a.exitCode, 0, a.stderr);
    assert.equal(b.exitCode, 0, b.stderr);
    assert.match(a.stderr + b.stderr, /waiting for another "fcvm setup" to finish/);
    assert.equal((a.stderr + b.stderr).match(/initrd: built/g)?.length, 1, a.stderr + b.stderr);
    const left = readdirSync(join(base, 'artifacts')).filter((f) => f.startsWith('.'));
    assert.deepEqual(left, []);
    assert.equal(readdirSync(join(base, 'artifacts')).filter((f) => f.startsWith('initrd-')).length, 1);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
