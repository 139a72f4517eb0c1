import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { build } from 'esbuild';
import { execa, type ResultPromise } from 'execa';
import { assertNoLeftovers, CLI, fcvm, fdsOutsideJail, layout, spawnFcvm, stateFile, vmsUnavailableReason, waitFor } from '../helpers.js';
import { assertUserLeftNothing, rootlessUser } from '../rootless.js';
import { isJailId } from '../../src/jail/identity.js';
import { assertJailed, filesOf, ls, ns, probe, qemusBelow, running, status, type Listed } from '../jail-helpers.js';

describe('the VMM jail', { concurrency: false }, () => {
  const procs: ResultPromise[] = [];
  let a: Listed;
  let b: Listed;
  let skip: string | undefined;

  before(async () => {
    skip = vmsUnavailableReason();
    if (skip) return void process.stderr.write(`\n*** SKIPPED the VMM jail: ${skip} ***\n`);
    const pa = spawnFcvm(['podman', 'run', '--name', 'it-jail-a', '--stop-timeout', '1', 'localhost/bb', '--', 'sleep', '600']);
    const pb = spawnFcvm(['podman', 'run', '--name', 'it-jail-b', '--stop-timeout', '1', '--network', 'none', 'localhost/bb', '--', 'sleep', '600']);
    procs.push(pa, pb);
    [a, b] = await Promise.all([running('it-jail-a', pa), running('it-jail-b', pb)]);
  });

  after(async () => {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs);
    if (!skip) assertNoLeftovers();
  });

  test('each VMM runs as its own unprivileged uid and gid, with no capabilities, no_new_privs and seccomp', (t) => {
    if (skip) return t.skip(skip);
    const [sa, sb] = [status(a.vmmPid), status(b.vmmPid)];
    for (const [v, s] of [[a, sa], [b, sb]] as const) {
      const [ruid, euid, suid, fsuid] = s.get('Uid')!.split(/\s+/).map(Number);
      const [rgid, egid, sgid, fsgid] = s.get('Gid')!.split(/\s+/).map(Number);
      assert.ok(ruid! > 0 && ruid === euid && euid === suid && suid === fsuid, `uid ${s.get('Uid')}`);
      assert.ok(rgid! > 0 && rgid === egid && egid === sgid && sgid === fsgid, `gid ${s.get('Gid')}`);
      assert.equal(s.get('Groups'), '', 'no supplementary groups');
      assert.equal(ruid, v.jail?.uid);
      assert.equal(rgid, v.jail?.gid);
      for (const c of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(s.get(c), '0000000000000000', c);
      assert.equal(s.get('NoNewPrivs'), '1');
      assert.equal(s.get('Seccomp'), '2');
    }
    assert.notEqual(sa.get('Uid'), sb.get('Uid'));
    assert.notEqual(sa.get('Gid'), sb.get('Gid'));
  });

  test('each VMM has its own root, mount, PID, IPC and UTS namespaces; the network namespace is the VM\'s', (t) => {
    if (skip) return t.skip(skip);
    for (const v of [a, b]) {
      for (const n of ['mnt', 'pid', 'ipc', 'uts']) assert.notEqual(ns(v.vmmPid, n), ns('self', n), n);
      const root = statSync(`/proc/${v.vmmPid}/root/`);
      const host = statSync('/');
      assert.ok(root.dev !== host.dev || root.ino !== host.ino, 'a root that is not the host\'s');
      assert.ok(existsSync(`/proc/${v.vmmPid}/root/usr/bin/qemu-system-x86_64`));
      for (const p of ['etc/shadow', 'etc/passwd', 'bin/sh', 'usr/bin/python3', 'root', 'home', 'var/lib/fcvm-jail/state']) {
        assert.ok(!existsSync(`/proc/${v.vmmPid}/root/${p}`), `${p} is not in the jail`);
      }
      assert.equal(readFileSync(`/proc/${v.vmmPid}/stat`, 'utf8').split(' ')[0], String(v.vmmPid));
      // QEMU is the only child of bubblewrap's init, PID 1 of the jail's PID namespace.
      const status = readFileSync(`/proc/${v.vmmPid}/status`, 'utf8');
      assert.match(status, /NSpid:\s+\d+\s+2\n/, 'QEMU is PID 2 of its own PID namespace');
      const init = Number(/PPid:\s+(\d+)/.exec(status)![1]);
      assert.match(readFileSync(`/proc/${init}/status`, 'utf8'), /NSpid:\s+\d+\s+1\n/, 'its parent is that namespace\'s init');
      assert.equal(ns(init, 'pid'), ns(v.vmmPid, 'pid'));
      assert.deepEqual(fdsOutsideJail(v.vmmPid), [], 'every file the VMM holds open is inside its root');
    }
    assert.equal(ns(a.vmmPid, 'net'), `net:[${statSync(`/run/netns/${a.network.netns}`).ino}]`, 'bridged: the VM\'s own network namespace');
    assert.equal(ns(b.vmmPid, 'net'), ns('self', 'net'), '--network none: the host\'s, as without a jail');
  });

  test('each VMM is in its VM\'s cgroup, which has its memory, pids and CPU limits; fcvm ls --json shows the jail', (t) => {
    if (skip) return t.skip(skip);
    for (const v of [a, b]) {
      const j = v.jail!;
      assert.equal(j.mode, 'full');
      assert.equal(j.root, `/proc/${v.vmmPid}/root`);
      assert.deepEqual(j.namespaces, ['mnt', 'pid', 'ipc', 'uts']);
      assert.match(j.seccomp!, /spawn=deny/);
      assert.ok(j.cgroup, `no cgroup: ${j.cgroupWhy}`);
      const id = filesOf(v.name).id;
      const own = readFileSync(`/proc/${v.vmmPid}/cgroup`, 'utf8');
      for (const d of j.cgroup.dirs) {
        assert.ok(d.endsWith(`/${id}`), d);
        assert.ok(readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').includes(String(v.vmmPid)), `${d} holds the VMM`);
      }
      assert.ok(own.split('\n').filter((l) => l.endsWith(`/${id}`)).length >= (j.cgroup.version === 1 ? 2 : 1), own);
      const read = (f: string) => readFileSync(j.cgroup!.dirs.map((d) => join(d, f)).find((p) => existsSync(p))!, 'utf8').trim();
      const mem = Number(read(j.cgroup.version === 1 ? 'memory.limit_in_bytes' : 'memory.max'));
      assert.equal(mem, j.cgroup.memoryBytes);
      assert.ok(mem > 512 * 2 ** 20 && mem < 2048 * 2 ** 20, `memory limit ${mem}: 512 MiB of RAM plus QEMU's own`);
      assert.equal(Number(read('pids.max')), j.cgroup.pids);
      assert.ok(Number(read('pids.current')) <= j.cgroup.pids);
    }
  });

  test('escape drills: from inside VM A\'s VMM, nothing of the host\'s or of VM B\'s can be read, written, reached or signalled', async (t) => {
    if (skip) return t.skip(skip);
    const fa = filesOf(a.name);
    const fb = filesOf(b.name);
    const { jail } = a;
    const denied = [
      { op: 'read', path: '/etc/shadow' }, { op: 'write', path: '/etc/shadow' }, { op: 'read', path: '/../../../etc/shadow' },
      { op: 'read', path: fb.disk }, { op: 'write', path: fb.disk }, { op: 'read', path: fb.ram }, { op: 'write', path: fb.ram },
      { op: 'list', path: layout.vmState }, { op: 'read', path: stateFile(b.name) }, { op: 'write', path: join(layout.vmState, 'x.json'), create: true },
      { op: 'connect', path: fb.control }, { op: 'connect', path: fb.qmp }, { op: 'connect', path: fb.agent }, { op: 'connect', path: fa.control },
      { op: 'kill', pid: b.vmmPid }, { op: 'kill', pid: b.pid }, { op: 'kill', pid: a.pid }, { op: 'kill', pid: 1 },
      { op: 'write', path: '/usr/bin/qemu-system-x86_64' }, { op: 'write', path: '/x', create: true },
    ];
    // What A's own VMM needs stays reachable: the probe really stands where QEMU does.
    const allowed = [{ op: 'read', path: fa.disk }, { op: 'write', path: fa.ram }, { op: 'write', path: join(fa.runDir, 'vmm', 'probe'), create: true }, { op: 'list', path: join(fa.runDir, 'vmm') }, { op: 'kill', pid: 2 }];
    const r = await probe('jail', a.vmmPid, jail!.uid!, jail!.gid!, [...denied, ...allowed]);
    assert.deepEqual(r.entered, ['ipc', 'mnt', 'pid', 'uts']);
    assert.ok(r.filters! >= 1, 'under QEMU\'s own seccomp filter');
    const results = r.results!;
    for (const d of results.slice(0, denied.length)) assert.equal(d.ok, false, `${d.op} ${d.target} must fail`);
    for (const d of results.slice(denied.length)) assert.equal(d.ok, true, `${d.op} ${d.target} must work (${d.errno})`);
    // Paths of B's and the host's are not even there; signals find no such process, and
    // the jail's init (root's) refuses them.
    assert.ok(results.filter((d) => d.op === 'kill' && ![1, 2].includes(Number(d.target))).every((d) => d.errno === 'ESRCH'));
    assert.equal(results.find((d) => d.op === 'kill' && Number(d.target) === 1)?.errno, 'EPERM');
    assert.ok(results.filter((d) => d.op !== 'kill' && !String(d.target).startsWith('/usr') && d.target !== '/x' && d.ok === false).every((d) => d.errno === 'ENOENT'), JSON.stringify(results));
  });

  test('escape drills: a privilege-raising system call kills the VMM\'s context (seccomp)', async (t) => {
    if (skip) return t.skip(skip);
    const r = await probe('jail', a.vmmPid, a.jail!.uid!, a.jail!.gid!, [{ op: 'setuid0' }]);
    assert.equal(r.killedBy, 'SIGSYS');
  });

  test('the second wall: were the namespaces gone, A\'s uid alone still reaches none of B\'s files, the host\'s secrets or fcvm\'s state', async (t) => {
    if (skip) return t.skip(skip);
    const fa = filesOf(a.name);
    const fb = filesOf(b.name);
    const r = await probe('uid', a.vmmPid, a.jail!.uid!, a.jail!.gid!, [
      { op: 'read', path: '/etc/shadow' }, { op: 'read', path: fb.ram }, { op: 'write', path: fb.ram }, { op: 'read', path: fb.disk },
      { op: 'list', path: layout.vmState }, { op: 'read', path: stateFile(b.name) }, { op: 'connect', path: fb.control }, { op: 'kill', pid: b.vmmPid },
      { op: 'read', path: fa.ram },
    ]);
    const results = r.results!;
    for (const d of results.slice(0, -1)) assert.equal(d.ok, false, `${d.op} ${d.target} must fail`);
    assert.ok(results.slice(0, -1).every((d) => ['EACCES', 'EPERM'].includes(d.errno!)), JSON.stringify(results));
    assert.equal(results.at(-1)!.ok, true, 'A\'s own RAM file is A\'s');
  });

  test('cgroup v2, as a guest has it: the same VM cgroup code makes, limits, fills and removes a cgroup there', async (t) => {
    if (skip) return t.skip(skip);
    // This host's cgroups are v1 (or v2, or hybrid); fcvm's guest mounts cgroup v2 with
    // every controller, so the v2 code runs for real there, in the guest's Node.
    const bundle = join(mkdtempSync(join(tmpdir(), 'fcvm-cgv2-')), 'cgroup-drill.mjs');
    await build({ entryPoints: [resolve('dist/test/fixtures/cgroup-drill.js')], bundle: true, platform: 'node', format: 'esm', target: 'node18', outfile: bundle, external: ['koffi'], logLevel: 'warning' });
    const put = await execa(process.execPath, [CLI, 'exec', '-i', b.name, '--vm', '--', 'sh', '-c', 'cat > /tmp/cgroup-drill.mjs'], { inputFile: bundle, reject: false });
    rmSync(dirname(bundle), { recursive: true, force: true });
    assert.equal(put.exitCode, 0, String(put.stderr));
    const r = await fcvm(['exec', b.name, '--vm', '--', 'node', '/tmp/cgroup-drill.mjs']);
    assert.equal(r.exitCode, 0, r.stderr);
    const d = JSON.parse(r.stdout.trim().split('\n').pop()!) as { why?: string; version: number; dirs: string[]; memory: string; pids: string; cpu: string; joined: boolean; current: number; events: string; removed: boolean; bombGone: boolean };
    assert.equal(d.why, undefined);
    assert.equal(d.version, 2);
    assert.match(d.dirs[0]!, /^\/sys\/fs\/cgroup\/fcvm\/dd12cd-\d+-\d+$/);
    assert.deepEqual([d.memory, d.pids, d.cpu, d.joined], [String(64 * 2 ** 20), '12', '200', true]);
    assert.ok(d.current <= 12, `pids.current ${d.current}`);
    assert.match(d.events, /max [1-9]/);
    assert.deepEqual([d.removed, d.bombGone], [true, true]);
  });

  test('a fork bomb in the VM\'s cgroup and identity stops at its pids limit, and the other VM carries on', async (t) => {
    if (skip) return t.skip(skip);
    const j = a.jail!;
    const r = await probe('bomb', j.cgroup!.dirs.join(','), j.uid!, j.gid!);
    assert.equal(r.error, 'EAGAIN');
    assert.ok(r.forks! < j.cgroup!.pids, `${r.forks} forks against a limit of ${j.cgroup!.pids}`);
    const e = await fcvm(['exec', b.name, '--', 'echo', 'still here']);
    assert.equal(e.stdout.trim(), 'still here');
    // The bomb's tasks are gone from A's cgroup, and A's own VMM lived through it.
    const pidsDir = j.cgroup!.dirs.find((d) => existsSync(join(d, 'pids.current')))!;
    const left = Number(readFileSync(join(pidsDir, 'pids.current'), 'utf8'));
    assert.ok(left < j.cgroup!.pids / 2, `${left} tasks left in A's cgroup after the bomb (limit ${j.cgroup!.pids})`);
    const ea = await fcvm(['exec', a.name, '--', 'echo', 'A too']);
    assert.equal(ea.stdout.trim(), 'A too', ea.stderr);
  });

  test('a clone\'s VMM is jailed like a cold one, and maps the memory server\'s sealed RAM, which it cannot write', async (t) => {
    if (skip) return t.skip(skip);
    const tag = 'it-jail-snap';
    await fcvm(['snapshots', 'delete', tag]);
    const made = await fcvm(['snapshot', 'create', a.name, '--tag', tag]);
    assert.equal(made.exitCode, 0, made.stderr);
    // The frozen disk the source's VMM wrote is root's now, inside root's snapshot directory.
    const frozen = statSync(join(layout.snapshots, tag, 'root.qcow2'));
    assert.deepEqual([frozen.uid, frozen.mode & 0o777], [0, 0o644]);
    const server = spawnFcvm(['snapshot', 'serve', tag]);
    let clone: ResultPromise | undefined;
    try {
      await waitFor(async () => {
        if (server.exitCode !== null) throw new Error(`the server exited: ${String((await server).all).slice(-1000)}`);
        return JSON.parse((await fcvm(['snapshot', 'ls', '--json'])).stdout || '[]').some((x: { pid: number }) => x.pid === server.pid);
      }, 120_000, 'the memory server');
      clone = spawnFcvm(['snapshot', 'run', '--pid', String(server.pid), '--name', 'it-jail-clone', '--stop-timeout', '1']);
      const c = await running('it-jail-clone', clone);
      assertJailed(c, [a.jail?.uid, b.jail?.uid]);
      // Guest RAM is the server's sealed memfd, mapped privately: shared pages, no writes to it.
      const maps = readFileSync(`/proc/${c.vmmPid}/maps`, 'utf8');
      assert.match(maps, new RegExp(`/memfd:fcvm-snapshot-${tag} \\(deleted\\)`));
      assert.ok(!maps.includes(join(layout.snapshots, tag, 'memory')), 'the snapshot\'s memory file itself is not mapped');
      const e = await fcvm(['exec', 'it-jail-clone', '--', 'echo', 'clone here']);
      assert.equal(e.stdout.trim(), 'clone here', e.stderr);
    } finally {
      clone?.kill('SIGTERM');
      await clone;
      server.kill('SIGTERM');
      await server;
      await fcvm(['snapshots', 'delete', tag]);
    }
  });

  test('a run restored from a startup snapshot is jailed like a cold one, and its RAM copy is its own uid\'s', async (t) => {
    if (skip) return t.skip(skip);
    // The startup snapshot of it-jail-a's key (its run saved it, or prepare does now).
    const prep = await fcvm(['podman', 'prepare', 'localhost/bb']);
    assert.equal(prep.exitCode, 0, prep.stderr);
    const run = spawnFcvm(['podman', 'run', '--name', 'it-jail-startup', '--stop-timeout', '1', 'localhost/bb', '--', 'sleep', '600']);
    try {
      const r = await running('it-jail-startup', run);
      assert.match(r.startupSnapshot ?? '', /^startup-/, 'the run restored a startup snapshot');
      assertJailed(r, [a.jail?.uid, b.jail?.uid]);
      const { ram } = filesOf(r.name);
      const st = statSync(ram);
      assert.deepEqual([st.uid, st.mode & 0o777], [r.jail!.uid, 0o600], 'the RAM copy');
      // Mapped by inode: the VMM sees the file through its own root.
      const inodes = readFileSync(`/proc/${r.vmmPid}/maps`, 'utf8').split('\n').map((l) => l.split(/\s+/)[4]);
      assert.ok(inodes.includes(String(st.ino)), 'the VMM maps its own RAM copy');
      const e = await fcvm(['exec', 'it-jail-startup', '--', 'echo', 'restored here']);
      assert.equal(e.stdout.trim(), 'restored here', e.stderr);
    } finally {
      run.kill('SIGTERM');
      await run;
    }
  });

  test('a pooled clone\'s VMM is jailed while it waits, and the hand-out keeps that jail', async (t) => {
    if (skip) return t.skip(skip);
    const tag = 'it-jail-pool';
    await fcvm(['snapshots', 'delete', tag]);
    const made = await fcvm(['snapshot', 'create', a.name, '--tag', tag]);
    assert.equal(made.exitCode, 0, made.stderr);
    const server = spawnFcvm(['snapshot', 'serve', tag, '--pool', '1', '--network', 'bridged']);
    let text = '';
    server.stderr!.on('data', (d: Buffer) => (text += d.toString()));
    let pooled: Listed | undefined;
    try {
      await waitFor(() => {
        if (server.exitCode !== null) throw new Error(`the server exited: ${text.slice(-1000)}`);
        return [...text.matchAll(/(\d+) (?:clone\(s\) )?ready/g)].pop()?.[1] === '1';
      }, 300_000, 'a pooled clone');
      // Before it is anybody's: one VMM below the server, as an unprivileged uid of its own.
      const [waiting, ...more] = qemusBelow(server.pid!);
      assert.ok(waiting !== undefined && more.length === 0, `one waiting VMM (${[waiting, ...more].join(', ')})`);
      const s = status(waiting);
      const uid = Number(s.get('Uid')!.split(/\s+/)[0]);
      assert.ok(isJailId(uid) && ![a.jail?.uid, b.jail?.uid].includes(uid), `the waiting VMM's own uid (${uid})`);
      assert.deepEqual([s.get('CapEff'), s.get('NoNewPrivs'), s.get('Seccomp')], ['0000000000000000', '1', '2']);
      assert.notEqual(ns(waiting, 'mnt'), ns('self', 'mnt'));

      const r = await fcvm(['snapshot', 'run', '--pid', String(server.pid), '-d', '--name', 'it-jail-pooled']);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.match(text, /pool: handed out "it-jail-pooled"/);
      pooled = (await ls()).find((v) => v.name === 'it-jail-pooled');
      assert.ok(pooled, 'the pooled clone is listed');
      assert.equal(pooled.vmmPid, waiting, 'the handed-out VM is the one that waited');
      assertJailed(pooled, [a.jail?.uid, b.jail?.uid]);
      const e = await fcvm(['exec', 'it-jail-pooled', '--', 'echo', 'pooled here']);
      assert.equal(e.stdout.trim(), 'pooled here', e.stderr);
    } finally {
      if (pooled) await fcvm(['stop', 'it-jail-pooled']);
      server.kill('SIGTERM');
      await server;
      await fcvm(['snapshots', 'delete', tag]);
    }
  });
});

test('--no-jail says loudly that it is unsafe, and its VMM runs as root as before', async (t) => {
  const why = vmsUnavailableReason();
  if (why) return void (process.stderr.write(`\n*** SKIPPED ${t.name}: ${why} ***\n`), t.skip(why));
  const p = spawnFcvm(['podman', 'run', '--no-jail', '--name', 'it-nojail', '--stop-timeout', '1', '--network', 'none', 'localhost/bb', '--', 'sleep', '600']);
  try {
    const v = await running('it-nojail', p);
    const s = status(v.vmmPid);
    assert.equal(s.get('Uid')!.split(/\s+/)[0], '0');
    assert.equal(s.get('Seccomp'), '0');
    assert.equal(ns(v.vmmPid, 'mnt'), ns('self', 'mnt'));
    assert.deepEqual(v.jail, { mode: 'off', root: '/' });
    assert.match((await fcvm(['ls'])).stdout, /^it-nojail .*\bOFF\s*$/m);
  } finally {
    p.kill('SIGTERM');
  }
  const r = await p;
  assert.match(String(r.all), /WARNING: --no-jail is UNSAFE and meant for debugging only\. .*a guest that escapes into the VMM owns this host/);
  assertNoLeftovers();
});

test('rootless: an unprivileged user\'s VMM gets no capabilities, no_new_privs, seccomp and, where allowed, its own namespaces', async (t) => {
  const why = vmsUnavailableReason();
  if (why) return void (process.stderr.write(`\n*** SKIPPED ${t.name}: ${why} ***\n`), t.skip(why));
  const { asUser, cli } = await rootlessUser(t);
  const uid = Number((await execa('id', ['-u', 'fcvm-it-user'])).stdout);
  const vm = asUser(process.execPath, [cli, 'podman', 'run', '--name', 'it-jail-rl', '--stop-timeout', '1', 'localhost/bb', '--', 'sleep', '600']);
  let ended: string | undefined;
  void vm.then((r) => (ended = `exit ${r.exitCode}: ${String(r.stderr).slice(-1500)}`));
  let supervisorPid = 0;
  try {
    const v = await waitFor(async () => {
      if (ended) throw new Error(`the rootless supervisor ended early (${ended})`);
      const l = await asUser(process.execPath, [cli, 'ls', '--json']);
      return (JSON.parse(String(l.stdout) || '[]') as Listed[]).find((x) => x.name === 'it-jail-rl' && x.status === 'healthy');
    }, 240_000, 'the rootless VM');
    supervisorPid = v.pid;
    const s = status(v.vmmPid);
    assert.equal(v.jail?.mode, 'user');
    assert.equal(Number(s.get('Uid')!.split(/\s+/)[1]), uid);
    for (const c of ['CapPrm', 'CapEff', 'CapAmb']) assert.equal(s.get(c), '0000000000000000', c);
    assert.equal(s.get('NoNewPrivs'), '1');
    assert.equal(s.get('Seccomp'), '2');
    if (v.jail?.namespaces?.length) {
      for (const n of ['mnt', 'pid', 'user']) assert.notEqual(ns(v.vmmPid, n), ns('self', n), n);
      assert.ok(!existsSync(`/proc/${v.vmmPid}/root/etc/shadow`));
    } else process.stderr.write(`\n*** SKIPPED namespaces for the rootless VMM: this kernel refuses user namespaces to fcvm-it-user ***\n`);
    assert.ok(v.jail?.cgroup || v.jail?.cgroupWhy, 'a cgroup, or why there is none');
  } finally {
    // runuser does not pass signals on: signal the user's fcvm itself, as the user could.
    if (supervisorPid) process.kill(supervisorPid, 'SIGTERM');
    else vm.kill('SIGKILL');
    await vm;
  }
  assertUserLeftNothing();
});
