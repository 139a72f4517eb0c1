import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readdirSync, readFileSync, writeFileSync, writeSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { ResultPromise } from 'execa';
import { SNAPSHOT_SCHEMA } from '../../src/snapshot/store.js';
import { assertNoLeftovers, fcvm, hypervisor, layout, spawnFcvm, vmmPids, vmsAvailable, vmsUnavailableReason, waitFor } from '../helpers.js';
import { freePort, httpGet, netSnapshot } from '../net-helpers.js';
import { assertUserLeftNothing, endsEarly, rootlessUser } from '../rootless.js';

interface Listed {
  name: string;
  pid: number;
  status: string;
  clone?: { tag: string; servePid?: number };
  network: { mode: string };
}
interface Served {
  pid: number;
  tag: string;
  clones: { name: string; pid: number }[];
}

const ls = async () => JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as Listed[];
const healthy = (name: string, ms = 180_000) => waitFor(async () => (await ls()).find((v) => v.name === name && v.status === 'healthy'), ms, `${name} healthy`);
const served = async () => JSON.parse((await fcvm(['snapshot', 'ls', '--json'])).stdout || '[]') as Served[];
const HTTPD = ['httpd', '-f', '-p', '80', '-h', '/www'];
const get = (port: number) => waitFor(() => httpGet('127.0.0.1', port).catch(() => undefined), 30_000, `port ${port}`);
const SRC = 'it-snap-src';
const TAG = 'it-snap';

/** Starts a memory server for `tag` and waits until it serves. */
async function serve(tag: string): Promise<{ proc: ResultPromise; pid: number }> {
  const proc = spawnFcvm(['snapshot', 'serve', tag]);
  const pid = proc.pid!;
  await waitFor(async () => (await served()).some((s) => s.pid === pid) || proc.exitCode !== null, 60_000, 'the memory server');
  if (proc.exitCode !== null) assert.fail(`the server exited early: ${(await proc).all}`);
  return { proc, pid };
}

/** What clones, servers and snapshots can leave behind, besides the source VM. */
function footprint() {
  return {
    vms: readdirSync(layout.vmState).sort(),
    vmms: vmmPids().length,
    ram: readdirSync('/dev/shm').filter((f) => f.startsWith('fcvm-mem-')).length,
    serves: existsSync(layout.serveState) ? readdirSync(layout.serveState) : [],
    net: netSnapshot(),
  };
}

describe('snapshots and clones', { concurrency: false }, () => {
  let source: ResultPromise | undefined;
  let sourcePort = 0;
  let baseline: ReturnType<typeof footprint>;
  let skip = false;

  before(async () => {
    const why = vmsUnavailableReason();
    if (why) {
      process.stderr.write(`\n*** SKIPPED snapshots and clones: ${why} ***\n`);
      return void (skip = true);
    }
    await fcvm(['snapshots', 'delete', TAG]);
    sourcePort = await freePort();
    source = spawnFcvm(['podman', 'run', '--name', SRC, '--stop-timeout', '1', '--publish', `127.0.0.1:${sourcePort}:80`, 'localhost/bb', '--', ...HTTPD]);
    await healthy(SRC);
    await get(sourcePort);
    const r = await fcvm(['snapshot', 'create', SRC, '--tag', TAG]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /snapshot "it-snap" of VM "it-snap-src": source paused \d+ ms, 512 MiB of memory/);
    baseline = footprint();
  });

  after(async () => {
    if (skip) return;
    source?.kill('SIGTERM');
    await source;
    assert.equal((await fcvm(['snapshots', 'delete', TAG])).exitCode, 0);
    assertNoLeftovers();
  });

  const settled = async () => {
    await fcvm(['ls']);
    assert.deepEqual(footprint(), baseline);
  };

  test('the source keeps serving and answering exec after its snapshot; snapshots lists it', async (t) => {
    if (skip) return t.skip('no VMs here');
    assert.match(await get(sourcePort), /hello from fcvm/);
    const e = await fcvm(['exec', SRC, '--', 'cat', '/www/index.html']);
    assert.equal(e.exitCode, 0, e.stderr);
    assert.match(e.stdout, /hello from fcvm/);
    const list = JSON.parse((await fcvm(['snapshots', '--json'])).stdout) as { tag: string; image: string; imageId?: string; vcpus: number; memoryMiB: number; sourceName: string; diskBytes: number }[];
    const s = list.find((x) => x.tag === TAG);
    assert.ok(s, 'listed');
    assert.equal(s.image, 'localhost/bb');
    // The image's ID and the vCPUs tell apart snapshots of one image name (a re-import, --cpu).
    const imageId = execFileSync('podman', ['image', 'inspect', '--format', '{{.Id}}', 'localhost/bb'], { encoding: 'utf8' }).trim();
    assert.equal(s.imageId, imageId);
    assert.equal(s.vcpus, (JSON.parse((await fcvm(['inspect', SRC])).stdout) as { HostConfig: { NanoCpus: number } }[])[0]!.HostConfig.NanoCpus / 1e9);
    assert.match((await fcvm(['snapshots'])).stdout, new RegExp(`${TAG}\\s+localhost/bb\\s+${imageId.slice(0, 12)}\\s+${s.vcpus}\\s+512 MiB`));
    assert.equal(s.memoryMiB, 512);
    assert.equal(s.sourceName, SRC);
    assert.ok(s.diskBytes > 0);
    const meta = JSON.parse(readFileSync(join(layout.snapshots, TAG, 'meta.json'), 'utf8'));
    assert.equal(meta.schema, SNAPSHOT_SCHEMA);
    assert.deepEqual(meta.plan.command, HTTPD);
    // The driver names its files: a qcow2 layer and a kernel stub on QEMU, a raw disk on Firecracker.
    const driverFiles = [meta.machine.rootDisk.file, ...(meta.machine.kernelFile ? [meta.machine.kernelFile] : [])];
    assert.deepEqual(driverFiles, hypervisor === 'qemu' ? ['root.qcow2', 'kernel.stub'] : ['root.raw']);
    for (const f of ['state', 'memory', 'image', ...driverFiles]) assert.match(meta.files[f].sha256, /^[0-9a-f]{64}$/);
  });

  test('a bridged snapshot\'s clone asked for rootless (slirp) is refused in one line before it boots, and leaves nothing', async (t) => {
    if (skip) return t.skip('no VMs here');
    if (hypervisor !== 'qemu') return t.skip('only QEMU\'s rootless NIC is slirp');
    const r = await fcvm(['snapshot', 'run', '--snapshot', TAG, '--network', 'rootless', '--exec', 'true']);
    assert.equal(r.exitCode, 125, r.stderr);
    assert.match(r.stderr, /invalid --network "rootless": the snapshot was taken bridged/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /Run the clone with --network bridged/);
    await settled();
  });

  test('5 clones from one server each serve their own port; the server owns them and ends them', async (t) => {
    if (skip) return t.skip('no VMs here');
    const server = await serve(TAG);
    const ports = await Promise.all([0, 1, 2, 3, 4].map(() => freePort()));
    const clones = ports.map((p, i) => spawnFcvm(['snapshot', 'run', '--pid', String(server.pid), '--name', `it-clone${i}`, '--publish', `127.0.0.1:${p}:80`]));
    try {
      for (const [i, p] of ports.entries()) {
        await healthy(`it-clone${i}`, 120_000).catch(async (e) => {
          server.proc.kill('SIGTERM');
          throw new Error(`${e.message}; clone: ${(await clones[i]!).all}; server: ${(await server.proc).all}`);
        });
        assert.match(await get(p), /hello from fcvm/, `clone ${i} on port ${p}`);
      }
      const mine = (await ls()).filter((v) => v.clone);
      assert.equal(mine.length, 5);
      for (const v of mine) assert.deepEqual(v.clone, { tag: TAG, servePid: server.pid });
      const owned = (await served()).find((s) => s.pid === server.pid)!;
      assert.deepEqual(owned.clones.map((c) => c.name).sort(), ['it-clone0', 'it-clone1', 'it-clone2', 'it-clone3', 'it-clone4']);
      // The clone is a VM of its own: its name, its exec, its process.
      const host = await fcvm(['exec', 'it-clone3', '--vm', '--', 'hostname']);
      assert.equal(host.stdout.trim(), 'it-clone3', host.stderr);
      // So is its container's (its own UTS namespace and /etc/hostname), as a cold run's.
      const inner = await fcvm(['exec', 'it-clone3', '--', 'sh', '-c', 'uname -n; cat /etc/hostname']);
      assert.deepEqual(inner.stdout.split(/\s+/).filter(Boolean), ['it-clone3', 'it-clone3'], inner.stderr);
      // And the line that makes its host name resolve follows it.
      const hosts = await fcvm(['exec', 'it-clone3', '--', 'cat', '/etc/hosts']);
      assert.match(hosts.stdout, /^172\.30\.0\.2\tit-clone3$/m, hosts.stdout);
      const cat = await fcvm(['exec', 'it-clone3', '--', 'cat', '/www/index.html']);
      assert.match(cat.stdout, /hello from fcvm/, cat.stderr);
      // Clones diverge: their kernels were reseeded differently.
      const rand = await Promise.all(['it-clone0', 'it-clone1'].map((n) => fcvm(['exec', n, '--vm', '--', 'head', '-c', '16', '/dev/urandom'])));
      assert.notEqual(rand[0]!.stdout, rand[1]!.stdout);
      const d = await fcvm(['snapshots', 'delete', TAG]);
      assert.equal(d.exitCode, 125);
      assert.match(d.stderr, /^fcvm: snapshot "it-snap" is in use by serve \d+, clone it-clone/);
    } finally {
      server.proc.kill('SIGTERM');
      await server.proc;
      for (const c of clones) await c;
    }
    assert.match(await get(sourcePort), /hello from fcvm/, 'the source is untouched');
    await settled();
  });

  test('--exec clones, prints the command\'s output, exits with its code and leaves nothing', async (t) => {
    if (skip) return t.skip('no VMs here');
    const r = await fcvm(['snapshot', 'run', '--snapshot', TAG, '--exec', 'sh -c "cat /www/index.html; echo to-stderr >&2; exit 3"']);
    assert.equal(r.exitCode, 3, r.stderr);
    assert.match(r.stdout, /hello from fcvm/);
    assert.match(r.stderr, /to-stderr/);
    const server = await serve(TAG);
    try {
      const ok = await fcvm(['snapshot', 'run', '--pid', String(server.pid), '--exec', 'cat /www/index.html']);
      assert.equal(ok.exitCode, 0, ok.stderr);
      assert.match(ok.stdout, /hello from fcvm/);
    } finally {
      server.proc.kill('SIGTERM');
      await server.proc;
    }
    await settled();
  });

  test('a server killed with SIGKILL still takes its clones with it', async (t) => {
    if (skip) return t.skip('no VMs here');
    const server = await serve(TAG);
    const clones = [0, 1].map((i) => spawnFcvm(['snapshot', 'run', '--pid', String(server.pid), '--name', `it-orphan${i}`, '--stop-timeout', '1']));
    await healthy('it-orphan0', 120_000);
    await healthy('it-orphan1', 120_000);
    server.proc.kill('SIGKILL');
    await server.proc;
    const ends = await Promise.all(clones);
    for (const e of ends) assert.notEqual(e.exitCode, null, 'the clone supervisor exited');
    await settled();
  });

  test('a clone cannot be snapshotted; tags, sources and taken tags are checked', async (t) => {
    if (skip) return t.skip('no VMs here');
    const clone = spawnFcvm(['snapshot', 'run', '--snapshot', TAG, '--name', 'it-snapclone', '--stop-timeout', '1']);
    try {
      await healthy('it-snapclone', 120_000);
      const r = await fcvm(['snapshot', 'create', 'it-snapclone', '--tag', 'it-never']);
      assert.equal(r.exitCode, 125);
      assert.match(r.stderr, /^fcvm: VM "it-snapclone" cannot be snapshotted: it is a clone/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    } finally {
      clone.kill('SIGTERM');
      await clone;
    }
    const cases: [string[], RegExp][] = [
      [['snapshot', 'create', SRC, '--tag', '../x'], /invalid snapshot tag "\.\.\/x"/],
      [['snapshot', 'create', SRC, '--tag', TAG], /a snapshot tagged "it-snap" already exists/],
      [['snapshot', 'create', 'no-such-vm', '--tag', 'x1'], /no running VM named "no-such-vm"/],
      [['snapshot', 'run', '--pid', '1', '--snapshot', TAG], /give exactly one of --pid and --snapshot/],
      [['snapshot', 'run', '--pid', '999999'], /no snapshot server with pid 999999/],
      [['snapshot', 'run', '--snapshot', 'no-such-tag'], /no snapshot tagged "no-such-tag"/],
      [['snapshot', 'serve', 'no-such-tag'], /no snapshot tagged "no-such-tag"/],
      [['snapshots', 'delete', 'no-such-tag'], /no snapshot tagged "no-such-tag"/],
    ];
    for (const [args, re] of cases) {
      const r = await fcvm(args);
      assert.equal(r.exitCode, 125, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}`);
    }
    await settled();
  });

  test('Ctrl-C on snapshot create cancels it: no snapshot appears, and the source can be snapshotted again', async (t) => {
    if (skip) return t.skip('no VMs here');
    const create = spawnFcvm(['snapshot', 'create', SRC, '--tag', 'it-cancelled']);
    // During the guest's trim (about 4.5 s): well before the snapshot is complete.
    await new Promise((r) => setTimeout(r, 1500));
    create.kill('SIGINT');
    const r = (await create.catch((e: unknown) => e)) as { exitCode?: number; signal?: string };
    assert.ok(r.exitCode === 130 || r.signal === 'SIGINT', `ended by the signal: ${r.exitCode} ${r.signal}`);
    // The supervisor finds out at its next step; then the source is free again and nothing was kept.
    await waitFor(async () => (await fcvm(['snapshot', 'create', SRC, '--tag', 'it-after-cancel'])).exitCode === 0, 120_000, 'a snapshot after the cancelled one');
    const tags = readdirSync(layout.snapshots);
    assert.ok(!tags.some((d) => d.includes('it-cancelled')), tags.join(' '));
    assert.equal((await fcvm(['snapshots', 'delete', 'it-after-cancel'])).exitCode, 0);
  });

  test('a corrupt or incomplete snapshot is refused, by checksum and by schema', async (t) => {
    if (skip) return t.skip('no VMs here');
    const bad = 'it-snap-bad';
    await fcvm(['snapshots', 'delete', bad]);
    assert.equal((await fcvm(['snapshot', 'create', SRC, '--tag', bad])).exitCode, 0);
    try {
      // A good snapshot is accepted first (and its files stamped as checked).
      assert.equal((await fcvm(['snapshot', 'run', '--snapshot', bad, '--exec', 'true'])).exitCode, 0);
      const mem = join(layout.snapshots, bad, 'memory');
      const fd = openSync(mem, 'r+');
      writeSync(fd, Buffer.from([0x5a]), 0, 1, 4096 * 77);
      closeSync(fd);
      for (const args of [['snapshot', 'run', '--snapshot', bad, '--exec', 'true'], ['snapshot', 'serve', bad]]) {
        const r = await fcvm(args);
        assert.equal(r.exitCode, 125, args.join(' '));
        assert.match(r.stderr, /^fcvm: snapshot "it-snap-bad" is corrupt or incomplete: file "memory" does not match its checksum/);
      }
      const metaPath = join(layout.snapshots, bad, 'meta.json');
      writeFileSync(metaPath, JSON.stringify({ ...JSON.parse(readFileSync(metaPath, 'utf8')), schema: 99 }));
      const r = await fcvm(['snapshot', 'run', '--snapshot', bad, '--exec', 'true']);
      assert.equal(r.exitCode, 125);
      assert.match(r.stderr, new RegExp(`corrupt or incomplete: schema version 99, this fcvm reads ${SNAPSHOT_SCHEMA}`));
      assert.match((await fcvm(['snapshots'])).stdout, /it-snap-bad\s+\(broken: /);
    } finally {
      assert.equal((await fcvm(['snapshots', 'delete', bad])).exitCode, 0);
    }
    await settled();
  });
});

test('a clone of a chatty, health-checked container: its output flows, it turns healthy, and --exec is not disturbed', async (t) => {
  if (!vmsAvailable(t)) return;
  const TICKS = ['sh', '-c', 'touch /tmp/ok; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done'];
  const src = spawnFcvm(['podman', 'run', '--name', 'it-chatty', '--stop-timeout', '1', 'localhost/bb-health', '--', ...TICKS]);
  try {
    await healthy('it-chatty');
    await fcvm(['snapshots', 'delete', 'it-chatty']);
    assert.equal((await fcvm(['snapshot', 'create', 'it-chatty', '--tag', 'it-chatty'])).exitCode, 0);
    const ex = await fcvm(['snapshot', 'run', '--snapshot', 'it-chatty', '--exec', 'echo exec-out']);
    assert.equal(ex.exitCode, 0, ex.stderr);
    assert.equal(ex.stdout, 'exec-out\n', 'the container\'s own output stays out of the exec\'s');
    const clone = spawnFcvm(['snapshot', 'run', '--snapshot', 'it-chatty', '--name', 'it-chatty-clone', '--stop-timeout', '1']);
    await healthy('it-chatty-clone', 120_000);
    await new Promise((r) => setTimeout(r, 2000));
    clone.kill('SIGTERM');
    const out = String((await clone).all ?? '');
    assert.match(out, /\[ctr:out\] tick-\d+/, 'the clone\'s container output reaches its supervisor');
  } finally {
    src.kill('SIGTERM');
    await src;
    await fcvm(['snapshots', 'delete', 'it-chatty']);
  }
  await fcvm(['ls']);
  assertNoLeftovers();
});

test('rootless, as an unprivileged user: snapshot, clone with its own port, --exec, nothing left', async (t) => {
  if (!vmsAvailable(t)) return;
  const { asUser, cli } = await rootlessUser(t);
  const user = (args: string[]) => asUser(process.execPath, [cli, ...args]);
  const [p0, p1] = [await freePort(), await freePort()];
  const src = user(['podman', 'run', '--name', 'it-rl-src', '--stop-timeout', '1', '--publish', `127.0.0.1:${p0}:80`, 'localhost/bb', '--', ...HTTPD]);
  let srcPid = 0;
  let servePid = 0;
  let clonePid = 0;
  try {
    const listed = async () => JSON.parse(String((await user(['ls', '--json'])).stdout) || '[]') as Listed[];
    const srcAlive = endsEarly('the user\'s podman run', src);
    srcPid = (await waitFor(async () => (srcAlive(), (await listed()).find((v) => v.name === 'it-rl-src' && v.status === 'healthy')), 180_000, 'the rootless source')).pid;
    await user(['snapshots', 'delete', 'it-rl-snap']);
    const snap = await user(['snapshot', 'create', 'it-rl-src', '--tag', 'it-rl-snap']);
    assert.equal(snap.exitCode, 0, String(snap.stderr));
    const s2 = user(['snapshot', 'serve', 'it-rl-snap']);
    servePid = (await waitFor(async () => (JSON.parse(String((await user(['snapshot', 'ls', '--json'])).stdout) || '[]') as Served[])[0], 60_000, 'the server')).pid;
    const clone = user(['snapshot', 'run', '--pid', String(servePid), '--name', 'it-rl-clone', '--publish', `127.0.0.1:${p1}:80`]);
    const cloneAlive = endsEarly('the user\'s snapshot run', clone);
    const c = await waitFor(async () => (cloneAlive(), (await listed()).find((v) => v.name === 'it-rl-clone' && v.status === 'healthy')), 120_000, 'the rootless clone');
    clonePid = c.pid;
    assert.equal(c.network.mode, 'rootless');
    assert.match(await get(p1), /hello from fcvm/);
    assert.match(await get(p0), /hello from fcvm/);
    const ex = await user(['snapshot', 'run', '--snapshot', 'it-rl-snap', '--exec', 'cat /www/index.html']);
    assert.equal(ex.exitCode, 0, String(ex.stderr));
    assert.match(String(ex.stdout), /hello from fcvm/);
    // runuser does not pass signals on: signal the user's server itself, as the user could.
    process.kill(servePid, 'SIGTERM');
    await s2;
    await clone;
    clonePid = 0;
    servePid = 0;
  } finally {
    for (const pid of [clonePid, servePid, srcPid]) if (pid) process.kill(pid, 'SIGTERM');
    await src;
    await user(['snapshots', 'delete', 'it-rl-snap']);
  }
  assertUserLeftNothing();
});
