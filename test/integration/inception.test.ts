/**
 * fcvm inside fcvm, and the KVM suite: one outer VM with the nested kernel profile (under
 * TCG here: QEMU's -cpu max emulates SVM, so the guest's kvm_amd runs real KVM guests),
 * in which an inner fcvm runs the QEMU driver's KVM paths for real: `--accel auto` picking
 * KVM, `-cpu host`, podman run, exec, snapshot create, clones from a server and the
 * clone's clock after the restore. Everything inner is driven through `fcvm exec --vm`,
 * so exit codes cross both levels. One outer VM for every check keeps the time down.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { assertNoLeftovers, ctrLines, fcvm, layout, spawnFcvm, vmsAvailable, vmsUnavailableReason, waitFor, type Result } from '../helpers.js';

const OUTER = 'it-outer';
/**
 * Inner steps are slow: an L2 guest under KVM inside a TCG guest. The first inner VM
 * (its startup snapshot saved too) was healthy after 181-190 s, and after more than
 * 240 s once on a host running everything 10-30% slower.
 */
const INNER_TIMEOUT_MS = 420_000;
let outer: ReturnType<typeof spawnFcvm> | undefined;
let skipWhy: string | undefined;

interface Jail { mode: string; uid?: number; gid?: number; namespaces?: string[]; seccomp?: string; cgroup?: { version: number; dirs: string[]; memoryBytes: number; pids: number }; cgroupWhy?: string }
interface Listing { name: string; status: string; accel?: string; kvm?: { enabled: boolean; present: boolean }; vmmPid?: number; jail?: Jail }

/** Runs a command in the outer guest OS. */
const inVm = (cmd: string[], timeoutMs = INNER_TIMEOUT_MS) => fcvm(['exec', OUTER, '--vm', '--', ...cmd], { timeoutMs });
/** Runs the inner fcvm (on the outer guest's PATH) to completion. */
const inner = (args: string[]) => inVm(['fcvm', ...args]);
/** Starts the inner fcvm in the background in the outer guest; its output goes to /tmp/NAME.log there. */
const innerBg = (name: string, args: string[]) => inVm(['sh', '-c', `fcvm ${args.map(shq).join(' ')} > /tmp/${name}.log 2>&1 < /dev/null &`]);
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const innerLs = async (): Promise<Listing[]> => JSON.parse((await inner(['ls', '--json'])).stdout || '[]') as Listing[];
const procStatus = (text: string) => new Map(text.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
const ok = (r: Result, what: string) => assert.equal(r.exitCode, 0, `${what}: ${r.stderr}`);

/** Waits for an inner condition; a timeout says what the background run `log` printed. */
async function waitInner<T>(fn: () => Promise<T>, what: string, log: string): Promise<NonNullable<T>> {
  const t0 = Date.now();
  try {
    const v = await waitFor(fn, INNER_TIMEOUT_MS, what);
    process.stderr.write(`inception: ${what} after ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    return v;
  } catch (e) {
    const tail = await inVm(['sh', '-c', `tail -30 /tmp/${log}.log`], 60_000);
    throw new Error(`${(e as Error).message}; /tmp/${log}.log in the outer guest ends with:\n${tail.stdout}${tail.stderr}`);
  }
}

/** Runs `fn` and says how long it took (the suite's own profile of the nested paths). */
async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const v = await fn();
  process.stderr.write(`inception: ${what} took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  return v;
}

before(async () => {
  if (vmsUnavailableReason()) return;
  const manifest = JSON.parse(readFileSync(layout.manifest, 'utf8')) as { nested?: unknown };
  if (!manifest.nested) {
    // Built once (a few minutes), content-addressed like the rest.
    const r = await fcvm(['setup', '--kernel-profile', 'nested'], { timeoutMs: 1_200_000 });
    assert.equal(r.exitCode, 0, `fcvm setup --kernel-profile nested: ${r.stderr}`);
  }
  const started = spawnFcvm(['podman', 'run', '--name', OUTER, '--kernel-profile', 'nested', '--privileged', '--mem', '3072', '--stop-timeout', '5', 'localhost/bb', '--', 'sleep', '1000000']);
  outer = started;
  let ended: Awaited<typeof started> | undefined;
  void started.then((r) => (ended = r));
  await waitFor(async () => ended ?? (JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as Listing[]).some((v) => v.name === OUTER && v.status === 'healthy'), 300_000, `${OUTER} to be healthy`);
  if (ended) {
    outer = undefined;
    // A KVM host without nested=1 refuses the outer VM with one line: that is "cannot nest here".
    const why = String(ended.stderr).trim().split('\n').pop() ?? '';
    if (ended.exitCode === 125 && /this host cannot run VMs inside VMs/.test(why)) return void (skipWhy = why.replace(/^fcvm: /, ''));
    assert.fail(`the outer VM ended with ${ended.exitCode} before it was healthy: ${String(ended.all).slice(-2000)}`);
  }
  const kvm = await inVm(['sh', '-c', 'test -c /dev/kvm && echo yes || { echo no; dmesg | grep -i -m3 -E "kvm|svm"; }']);
  if (!kvm.stdout.startsWith('yes')) skipWhy = `the outer guest has no /dev/kvm, so this host cannot nest (${kvm.stdout.replace(/\s+/g, ' ').trim()})`;
});

after(async () => {
  outer?.kill('SIGTERM');
  const r = await outer;
  if (r && !skipWhy && r.exitCode !== 143) process.stderr.write(`outer VM ended with ${r.exitCode}: ${String(r.all).slice(-2000)}\n`);
  if (outer) assertNoLeftovers();
});

let announced = false;

/** Skips unless the outer VM is up with /dev/kvm; the first skip says why in one loud line. */
function nested(t: TestContext): boolean {
  if (!vmsAvailable(t)) return false;
  if (skipWhy || !outer) {
    const why = skipWhy ?? 'the outer VM did not start';
    if (!announced) process.stderr.write(`\n*** SKIPPED the inception and KVM suite: ${why} ***\n`);
    announced = true;
    t.skip(why);
    return false;
  }
  return true;
}

test('the outer guest has /dev/kvm, in the guest OS and in its --privileged container', async (t) => {
  if (!nested(t)) return;
  const os = await inVm(['sh', '-c', 'ls -l /dev/kvm; grep -q -w svm /proc/cpuinfo && echo svm; cat /sys/module/kvm_amd/parameters/nested']);
  ok(os, 'guest OS');
  assert.match(os.stdout, /^crw.* \/dev\/kvm$/m);
  assert.match(os.stdout, /^svm$/m);
  assert.match(os.stdout, /^1$/m, 'kvm_amd allows nested guests');
  const ctr = await fcvm(['exec', OUTER, '--', 'ls', '-l', '/dev/kvm']);
  ok(ctr, 'container');
  assert.match(ctr.stdout, /^crw.* \/dev\/kvm$/m);
});

test('the outer VM\'s QEMU is jailed on this host: its own uid, no capabilities, seccomp, its own root; under TCG no /dev/kvm', async (t) => {
  if (!nested(t)) return;
  const o = (JSON.parse((await fcvm(['ls', '--json'])).stdout) as Listing[]).find((v) => v.name === OUTER)!;
  assert.equal(o.jail?.mode, 'full');
  const s = procStatus(readFileSync(`/proc/${o.vmmPid}/status`, 'utf8'));
  assert.equal(s.get('Uid')!.split(/\s+/)[0], String(o.jail!.uid));
  assert.ok(o.jail!.uid! >= 2046820352, `uid ${o.jail!.uid} is from the reserved range`);
  assert.deepEqual([s.get('CapEff'), s.get('NoNewPrivs'), s.get('Seccomp')], ['0000000000000000', '1', '2']);
  assert.ok(existsSync(`/proc/${o.vmmPid}/root/usr/bin/qemu-system-x86_64`) && !existsSync(`/proc/${o.vmmPid}/root/etc/shadow`), 'a root of its own');
  // Under TCG the nested CPU is emulated: the jail has no /dev/kvm (under KVM it has its own node).
  assert.equal(existsSync(`/proc/${o.vmmPid}/root/dev/kvm`), o.accel === 'kvm', `accel ${o.accel}`);
  assert.match(readFileSync(`/proc/${o.vmmPid}/cmdline`, 'utf8').split('\0').join(' '), o.accel === 'kvm' ? /-cpu host,\+(svm|vmx)/ : /-cpu max .*-sandbox on,/);
});

test('KVM suite: an inner VM with --accel auto runs on KVM (QMP query-kvm, kvm-clock), rootless with a published port', async (t) => {
  if (!nested(t)) return;
  ok(await innerBg('src', ['podman', 'run', '--name', 'src', '--network', 'rootless', '--publish', '18080:8080', '--env', 'GREETING=hi', 'localhost/bb', '--', 'httpd', '-f', '-p', '8080', '-h', '/www']), 'start src');
  const src = await waitInner(async () => (await innerLs()).find((v) => v.name === 'src' && v.status === 'healthy'), 'the inner VM src to be healthy', 'src');
  assert.equal(src.accel, 'kvm', '--accel auto picked KVM inside the outer VM');
  assert.deepEqual(src.kvm, { enabled: true, present: true }, 'QEMU\'s query-kvm');
  const clock = await inner(['exec', 'src', '--vm', '--', 'cat', '/sys/devices/system/clocksource/clocksource0/current_clocksource']);
  ok(clock, 'clocksource');
  assert.equal(clock.stdout.trim(), 'kvm-clock');
  const web = await inVm(['/run/fcvm/busybox', 'wget', '-q', '-O-', 'http://127.0.0.1:18080/']);
  ok(web, 'published port from the outer guest');
  assert.equal(web.stdout, '<h1>hello from fcvm</h1>\n');
});

test('the inner fcvm jails its QEMU too: its own uid, no capabilities, seccomp, its own root and namespaces, its own /dev/kvm node, a cgroup v2 with limits', async (t) => {
  if (!nested(t)) return;
  const src = (await innerLs()).find((v) => v.name === 'src')!;
  const j = src.jail!;
  assert.equal(j.mode, 'full', JSON.stringify(j));
  assert.deepEqual(j.namespaces, ['mnt', 'pid', 'ipc', 'uts']);
  assert.ok(j.cgroup, `no cgroup in the outer guest: ${j.cgroupWhy}`);
  assert.equal(j.cgroup.version, 2, 'the guest mounts cgroup v2 with every controller');
  const p = src.vmmPid!;
  const dir = j.cgroup.dirs[0]!;
  const r = await inVm(['sh', '-c', [
    `grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/${p}/status`,
    `echo "kvmnode: $(stat -c '%u %g %a %t:%T' /proc/${p}/root/dev/kvm)"`,
    `echo "hostkvm: $(stat -c '%u %g' /dev/kvm)"`,
    `echo "kvmopen: $(ls -l /proc/${p}/fd | grep -c /dev/kvm)"`,
    `echo "shadow: $(test -e /proc/${p}/root/etc/shadow && echo yes || echo no)"`,
    `for n in mnt pid; do echo "ns $n: $(readlink /proc/${p}/ns/$n) $(readlink /proc/1/ns/$n)"; done`,
    `echo "memory.max: $(cat ${dir}/memory.max)"; echo "pids.max: $(cat ${dir}/pids.max)"`,
    `echo "procs: $(grep -c -x ${p} ${dir}/cgroup.procs)"`,
  ].join('; ')]);
  ok(r, 'read the inner VMM');
  const v = new Map(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
  const uid = j.uid!;
  assert.ok(uid >= 2046820352, `uid ${uid} is from the reserved range`);
  assert.equal(v.get('Uid'), `${uid}\t${uid}\t${uid}\t${uid}`);
  assert.equal(v.get('Gid'), `${j.gid}\t${j.gid}\t${j.gid}\t${j.gid}`);
  assert.deepEqual([v.get('CapEff'), v.get('CapBnd'), v.get('NoNewPrivs'), v.get('Seccomp')], ['0000000000000000', '0000000000000000', '1', '2']);
  // KVM inside the jail: a device node of its own (10:232, owned by the VM's uid, 0600), which QEMU holds open; the guest's own keeps root's.
  assert.equal(v.get('kvmnode'), `${uid} ${j.gid} 600 a:e8`);
  assert.equal(v.get('hostkvm'), '0 0');
  assert.ok(Number(v.get('kvmopen')) >= 1, 'QEMU holds /dev/kvm open');
  assert.equal(v.get('shadow'), 'no');
  for (const n of ['mnt', 'pid']) {
    const [own, init] = v.get(`ns ${n}`)!.split(' ');
    assert.notEqual(own, init, `${n} namespace`);
  }
  assert.equal(Number(v.get('memory.max')), j.cgroup.memoryBytes);
  assert.equal(Number(v.get('pids.max')), j.cgroup.pids);
  assert.equal(v.get('procs'), '1', `${dir} holds the inner QEMU`);
});

test('an inner container through both levels: its output, and exit code 7 through fcvm exec (bridged inside bridged)', async (t) => {
  if (!nested(t)) return;
  // 172.30.0.1 is the inner VM's gateway: the outer guest's loopback, where src is published.
  // --no-snapshot: this is about output and exit code through both levels. Saving a startup
  // snapshot here (a bridged first run, so a cache miss) twice left the inner guest with an
  // RCU stall ("timer wakeup didn't happen for 101485 jiffies") until the 420 s limit; that
  // bug is open, and the KVM suite below snapshots and restores in the nested guest.
  const r = await timed('inner podman run (bridged)', () => inner(['podman', 'run', '--no-snapshot', '--name', 'inner1', '--env', 'GREETING=hi', 'localhost/bb', '--', 'sh', '-c',
    'echo Hello from inception $GREETING; wget -q -O- http://172.30.0.1:18080/; exit 7']));
  assert.equal(r.exitCode, 7, r.stderr);
  assert.deepEqual(ctrLines(r, 'out'), ['Hello from inception hi', '<h1>hello from fcvm</h1>']);
});

test('KVM suite: exec in the inner VM gives its output, env and exit code', async (t) => {
  if (!nested(t)) return;
  const r = await timed('inner exec', () => inner(['exec', 'src', '-e', 'A=1', '--', 'sh', '-c', 'echo $A $GREETING; echo err >&2; exit 3']));
  assert.equal(r.exitCode, 3, r.stderr);
  assert.equal(r.stdout, '1 hi\n');
  assert.equal(r.stderr, 'err\n');
});

test('KVM suite: snapshot create, a clone with --exec from a server, two clones sharing memory, the clone\'s clock after the restore', async (t) => {
  if (!nested(t)) return;
  const snap = await timed('inner snapshot create', () => inner(['snapshot', 'create', 'src', '--tag', 'kvm-warm']));
  ok(snap, 'snapshot create');
  ok(await innerBg('serve', ['snapshot', 'serve', 'kvm-warm']), 'start serve');
  const servePid = await waitInner(async () => {
    const s = JSON.parse((await inner(['snapshot', 'ls', '--json'])).stdout || '[]') as { pid: number; tag: string }[];
    return s.find((x) => x.tag === 'kvm-warm')?.pid;
  }, 'the inner memory server', 'serve');
  // The snapshot is seconds old by now: a clone that kept its source's clock would be behind.
  const clone = await timed('inner clone --exec', () => inVm(['sh', '-c', `date +%s; fcvm snapshot run --pid ${servePid} --exec 'sh -c "date +%s; cat /sys/devices/system/clocksource/clocksource0/current_clocksource; echo \\$GREETING; exit 4"'; rc=$?; date +%s; exit $rc`]));
  assert.equal(clone.exitCode, 4, clone.stderr);
  const [before, inClone, source, greeting, afterwards] = clone.stdout.trim().split('\n');
  assert.equal(source, 'kvm-clock');
  assert.equal(greeting, 'hi');
  const at = Number(inClone);
  assert.ok(at >= Number(before) - 1 && at <= Number(afterwards) + 1, `the clone's clock (${at}) lies within the outer guest's [${before}, ${afterwards}]`);

  ok(await innerBg('c1', ['snapshot', 'run', '--pid', String(servePid), '--name', 'c1']), 'start c1');
  ok(await innerBg('c2', ['snapshot', 'run', '--pid', String(servePid), '--name', 'c2']), 'start c2');
  const clones = await waitInner(async () => {
    const up = (await innerLs()).filter((v) => (v.name === 'c1' || v.name === 'c2') && (v.status === 'healthy' || v.status === 'running'));
    return up.length === 2 ? up : undefined;
  }, 'clones c1 and c2', 'c2');
  for (const c of clones) {
    assert.equal(c.accel, 'kvm');
    const e = await inner(['exec', c.name, '--', 'sh', '-c', 'echo $GREETING']);
    assert.equal(e.stdout, 'hi\n', e.stderr);
  }
  // Each clone's jailed QEMU maps the memory server's sealed memfd privately; the pages
  // both read are one page cache: proportional set size below resident size for it.
  const smaps = await inVm(['sh', '-c', clones.map((c) => `awk '/^[0-9a-f]+-[0-9a-f]+ /{m=($6 ~ /memfd:fcvm-snapshot-kvm-warm$/)} m&&/^Rss:/{r+=$2} m&&/^Pss:/{p+=$2} END{print r, p}' /proc/${c.vmmPid}/smaps`).join('; ')]);
  ok(smaps, 'smaps');
  for (const line of smaps.stdout.trim().split('\n')) {
    const [rss, pss] = line.split(' ').map(Number) as [number, number];
    assert.ok(rss > 1024, `a clone maps the server's sealed memory (${rss} KiB resident)`);
    assert.ok(pss < rss * 0.8, `and shares it (${pss} KiB proportional of ${rss} KiB resident)`);
  }
  // Ending the server ends its clones.
  ok(await inVm(['kill', String(servePid)]), 'kill serve');
  await waitInner(async () => (await innerLs()).every((v) => v.name === 'src'), 'the clones to stop with their server', 'serve');
});

test('the outer VM stops cleanly with inner VMs running, and leaves nothing behind', async (t) => {
  if (!nested(t)) return;
  outer!.kill('SIGTERM');
  const r = await outer!;
  assert.equal(r.exitCode, 143, String(r.all).slice(-2000));
  outer = undefined;
  assertNoLeftovers();
});
