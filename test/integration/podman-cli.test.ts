import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { assertNoLeftovers, CLI, ctrLines, fcvm, layout, spawnFcvm, vmsAvailable, waitFor } from '../helpers.js';
import { spawnOnPty } from '../pty.js';
import { freePort } from '../net-helpers.js';
import { isSameProcessAlive, processStartTime } from '../../src/util/proc.js';

/** busybox ash's prompt, which may be followed by a cursor-position query. */
const PROMPT = /# (\x1b\[6n)?$/;

interface Listed {
  name: string;
  pid: number;
  status: string;
  labels: Record<string, string>;
}
const ls = async (...args: string[]) => JSON.parse((await fcvm(['ls', '--json', ...args])).stdout || '[]') as Listed[];

test('podman run flags, asserted from inside the container; -i forwards stdin with EOF and gives the streams back raw', async (t) => {
  if (!vmsAvailable(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-it-flags-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'app.env'), '# the app\nA=from-file\nB=from-file\n');
  const data = join(dir, 'data');
  mkdirSync(data, { mode: 0o755 });
  writeFileSync(join(data, 'in.txt'), 'from-the-host\n');
  const script = 'pwd; id -u; id -g; hostname; echo "$A $B"; tr "\\0" " " < /proc/1/cmdline; echo; cat /data/in.txt; '
    + 'touch /data/new 2>/dev/null && echo writable || echo read-only; cat; echo to-stderr >&2; exit 4';
  const r = await execa(process.execPath, ['--', CLI, 'podman', 'run', '--name', 'it-flags', '-i', '--rm',
    '-w', '/tmp', '-u', '1000:1000', '--entrypoint', '/bin/sh', '-h', 'h1', '--env-file', join(dir, 'app.env'), '-e', 'B=flag', '--init',
    '-v', `${data}:/data:ro,Z`, 'localhost/bb', '--', '-c', script], { input: 'line one\nline two\n', reject: false, stripFinalNewline: false, timeout: 240_000 });
  assert.equal(r.exitCode, 4, String(r.stderr));
  const lines = String(r.stdout).split('\n');
  assert.equal(lines[0], '/tmp', '-w');
  assert.equal(lines[1], '1000', '-u uid');
  assert.equal(lines[2], '1000', '-u gid');
  assert.equal(lines[3], 'h1', '-h is --hostname, as in podman run');
  assert.equal(lines[4], 'from-file flag', '--env-file, and -e over it');
  assert.match(lines[5]!, /^\/run\/podman-init -- \/bin\/sh -c /, '--init is PID 1, --entrypoint under it');
  assert.equal(lines[6], 'from-the-host', '-v maps the host directory');
  assert.equal(lines[7], 'read-only', '-v ...:ro');
  assert.equal(existsSync(join(data, 'new')), false);
  assert.deepEqual(lines.slice(8), ['line one', 'line two', ''], 'stdin, then EOF');
  assert.equal(String(r.stderr), 'to-stderr\n', 'stderr raw, not prefixed');
  assertNoLeftovers();
});

test('-i: input sent after the container started reaches it whole', async (t) => {
  if (!vmsAvailable(t)) return;
  // 6 MiB, to a container that starts reading 3 s later.
  const input = randomBytes(6 << 20);
  const want = createHash('sha256').update(input).digest('hex');
  const p = execa(process.execPath, ['--', CLI, 'podman', 'run', '--name', 'it-late-in', '-i', '--rm', 'localhost/bb', '--', 'sh', '-c', 'echo started; sleep 3; sha256sum /dev/stdin'],
    { stdin: 'pipe', reject: false, timeout: 240_000 });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += String(d)));
  // Not a byte before the container runs: `podman run --detach` in the guest has exited by then.
  await waitFor(async () => out.includes('started') || p.exitCode !== null, 240_000, 'the container to start');
  p.stdin!.end(input);
  const r = await p;
  assert.equal(r.exitCode, 0, String(r.stderr));
  // Opened by name: stdin is a pipe, as conmon gives (a socket cannot be opened so: ENXIO).
  assert.equal(String(r.stdout), `started\n${want}  /dev/stdin`);
  assertNoLeftovers();
});

test('-i: megabytes through cat come back whole while more goes in (no deadlock of input and output)', async (t) => {
  if (!vmsAvailable(t)) return;
  const input = randomBytes(3 << 20);
  const r = await execa(process.execPath, ['--', CLI, 'podman', 'run', '--name', 'it-echo', '-i', '--rm', 'localhost/bb', 'cat'],
    { input, encoding: 'buffer', reject: false, timeout: 240_000 });
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.equal(createHash('sha256').update(r.stdout as unknown as Buffer).digest('hex'), createHash('sha256').update(input).digest('hex'));
  assertNoLeftovers();
});

test('-it with a pipe for stdin: podman\'s warning, and the piped keys reach the container\'s terminal', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await execa(process.execPath, ['--', CLI, 'podman', 'run', '--name', 'it-notty', '-it', '--rm', 'localhost/bb', 'sh'],
    { input: 'echo piped-$((6*7)); exit 3\n', reject: false, timeout: 240_000 });
  assert.equal(r.exitCode, 3, String(r.stderr));
  assert.match(String(r.stderr), /^fcvm: warning: the input device is not a TTY; -t with -i might not work properly/m);
  assert.match(String(r.stdout), /piped-42/);
  assertNoLeftovers();
});

test('-i into a pipe whose reader goes away: no crash, the container stops, fcvm exits 141, nothing is left', async (t) => {
  if (!vmsAvailable(t)) return;
  // head takes two lines and goes: fcvm's next write meets EPIPE, which it takes as SIGPIPE.
  const r = await execa('bash', ['-c', `"${process.execPath}" -- "${CLI}" podman run --name it-pipe -i --rm --stop-timeout 2 localhost/bb -- yes | head -2; echo "rc=\${PIPESTATUS[0]}" >&2`],
    { reject: false, timeout: 240_000, stdin: 'ignore' });
  assert.equal(r.stdout, 'y\ny');
  assert.doesNotMatch(String(r.stderr), /Unhandled|EPIPE|at .*\.m?js:\d+/, 'fcvm crashed on the closed pipe');
  assert.match(String(r.stderr), /rc=141$/);
  assertNoLeftovers();
});

test('podman flags for the guest\'s podman (security, limits, resolver, hosts, zone, labels, timeout), asserted from inside the container', async (t) => {
  if (!vmsAvailable(t)) return;
  const script = [
    'touch /rootfile 2>/dev/null && echo root-rw || echo root-ro',
    'touch /scratch/f && echo scratch-rw',
    'grep CapEff /proc/self/status | tr -d "\\t "',
    'grep NoNewPrivs /proc/self/status | tr -d "\\t "',
    'echo "$(ulimit -n) $(ulimit -Hn)"',
    'cat /proc/sys/kernel/msgmax',
    'df -k /dev/shm | awk "NR==2 {print \\$2}"',
    'umask',
    'id -G',
    'echo "${container-unset}"',
    'grep -v "^#" /etc/resolv.conf | tr "\\n" " "; echo',
    'grep -w db.lan /etc/hosts | tr -s "\\t " " "',
    'date +%Z',
  ].join('; ');
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-labels-'));
  writeFileSync(join(dir, 'labels'), '# from a file\ntier=web\nteam=file\n');
  const r = await fcvm(['podman', 'run', '--name', 'it-guest-flags', '--read-only', '--tmpfs', '/scratch:size=8m,mode=1777',
    '--cap-drop', 'ALL', '--cap-add', 'CHOWN', '--security-opt', 'no-new-privileges', '--ulimit', 'nofile=256:512',
    '--sysctl', 'kernel.msgmax=8192', '--shm-size', '32m', '--umask', '0077', '--group-add', '1234', '--unsetenv', 'container',
    '--dns', '10.0.0.53', '--dns-search', 'corp.lan', '--dns-option', 'ndots:3', '--add-host', 'db.lan:10.1.2.3', '--tz', 'Asia/Tokyo',
    '--label-file', join(dir, 'labels'), '--label', 'team=flag',
    'localhost/bb', '--', 'sh', '-c', script]);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.exitCode, 0, r.stderr);
  const [ro, scratch, caps, nnp, limits, msgmax, shm, umask, groups, unset, resolv, hosts, zone] = ctrLines(r, 'out');
  assert.equal(ro, 'root-ro', '--read-only');
  assert.equal(scratch, 'scratch-rw', '--tmpfs');
  assert.equal(caps, 'CapEff:0000000000000001', '--cap-drop ALL --cap-add CHOWN');
  assert.equal(nnp, 'NoNewPrivs:1', '--security-opt no-new-privileges');
  assert.equal(limits, '256 512', '--ulimit');
  assert.equal(msgmax, '8192', '--sysctl');
  assert.equal(shm, '32768', '--shm-size');
  assert.equal(umask, '0077', '--umask');
  assert.ok(groups!.split(' ').includes('1234'), `--group-add: ${groups}`);
  assert.equal(unset, 'unset', '--unsetenv');
  assert.equal(resolv, 'search corp.lan nameserver 10.0.0.53 options ndots:3 ', '--dns, --dns-search, --dns-option');
  assert.equal(hosts, '10.1.2.3 db.lan', '--add-host');
  assert.equal(zone, 'JST', '--tz');
  assert.equal((await fcvm(['inspect', '-f', '{{.Config.Labels.tier}} {{.Config.Labels.team}}', 'it-guest-flags'])).stdout, 'web flag\n', '--label-file, --label over it');
  await fcvm(['rm', 'it-guest-flags']);

  // --no-hosts: the image's /etc/hosts (busybox has none); --timeout: killed, exit 255 as podman's.
  const t0 = Date.now();
  const bare = await fcvm(['podman', 'run', '--rm', '--no-hosts', '--timeout', '3', 'localhost/bb', 'sh', '-c', 'test -e /etc/hosts && echo hosts || echo no-hosts; sleep 60']);
  assert.equal(bare.exitCode, 255, bare.stderr);
  assert.equal(bare.stdout, 'no-hosts\n');
  assert.ok(Date.now() - t0 < 50_000, `--timeout 3 ended the run in ${Date.now() - t0} ms`);
  assertNoLeftovers();
});

test('-it: a terminal with prompt, resizes, Ctrl-C to the container, and "exit 3" as the exit code', async (t) => {
  if (!vmsAvailable(t)) return;
  const s = await spawnOnPty(process.execPath, ['--', CLI, 'podman', 'run', '-it', '--name', 'it-tty', 'localhost/bb', 'sh'], 100, 30);
  try {
    await s.expect(PROMPT, 180_000);
    s.write('echo $((6*7))\r');
    await s.expect(/echo \$\(\(6\*7\)\)[\r\n]+42\r*\n/, 30_000);
    s.write('stty size\r');
    await s.expect(/\n30 100\r*\n/, 30_000);
    s.resize(132, 50);
    await new Promise((r) => setTimeout(r, 1500));
    let mark = s.output().length;
    s.write('stty size\r');
    await s.expect(/\n50 132\r*\n/, 30_000, mark);
    // Raw mode: ^C is a byte that the container's terminal turns into SIGINT for its foreground process.
    mark = s.output().length;
    s.write('sleep 60; echo after-sleep-$?\r');
    await new Promise((r) => setTimeout(r, 2000));
    s.write('\x03');
    await s.expect(PROMPT, 15_000, mark + 10);
    assert.doesNotMatch(s.output().slice(mark), /after-sleep-\d/, 'the sleep was interrupted, and the list with it');
    assert.match(s.output().slice(mark), /\^C/, 'the container\'s terminal saw the ^C');
    mark = s.output().length;
    s.write('echo still-here\r');
    await s.expect(/\nstill-here\r*\n/, 15_000, mark);
    s.write('exit 3\r');
    assert.equal(await s.exited, 3);
  } finally {
    s.close();
  }
  assertNoLeftovers();
});

test('-d prints the name and returns while the VM starts; labels, filters, logs -f, inspect, completion, stop; a second stop is done already', async (t) => {
  if (!vmsAvailable(t)) return;
  const name = 'it-detached';
  const t0 = Date.now();
  const d = await fcvm(['podman', 'run', '-d', '--name', name, '--label', 'team=a', '--label', 'tier=web', '--stop-timeout', '2', '--stop-signal', 'USR1', 'localhost/bb', '--',
    'sh', '-c', 'trap "echo got-usr1; exit 0" USR1; echo started; echo to-err >&2; i=0; while :; do echo tick $i; i=$((i+1)); sleep 1; done']);
  const returnedMs = Date.now() - t0;
  let follower: ReturnType<typeof execa> | undefined;
  try {
    assert.equal(d.exitCode, 0, d.stderr);
    assert.equal(d.stdout, `${name}\n`);
    assert.equal(d.stderr, '');
    const first = (await ls()).find((v) => v.name === name);
    assert.ok(first, 'listed at once');
    assert.equal(first.status, 'starting', `-d returned after ${returnedMs} ms, before the VM was up`);
    assert.deepEqual(first.labels, { team: 'a', tier: 'web' });
    // A detached supervisor is a session of its own, started with no run arguments on its command line.
    const stat = readFileSync(`/proc/${first.pid}/stat`, 'utf8');
    const sid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
    assert.equal(sid, first.pid, 'the supervisor leads its own session');
    const cmdline = readFileSync(`/proc/${first.pid}/cmdline`, 'utf8').split('\0');
    assert.ok(cmdline.includes('__supervise') && !cmdline.some((a) => a.includes('tick')), cmdline.join(' '));
    // As after podman run -d, an exec works at once: it waits for the VM and its container to start.
    const early = await fcvm(['exec', name, '--', 'sh', '-c', 'echo early > /dev/stdout; echo early-err > /dev/stderr']);
    assert.equal(early.exitCode, 0, early.stderr);
    assert.equal(early.stdout, 'early\n');
    assert.equal(early.stderr, 'early-err\n');
    const ready = await waitFor(async () => (await ls()).find((v) => v.name === name && v.status === 'healthy'), 180_000, 'healthy');
    t.diagnostic(`-d returned after ${returnedMs} ms; healthy after ${Date.now() - t0} ms`);

    assert.equal((await fcvm(['ls', '-q', '--filter', 'label=team=a'])).stdout, `${name}\n`);
    assert.equal((await fcvm(['ps', '-q', '--filter', 'label=team=b'])).stdout, '');
    assert.equal((await fcvm(['ps', '-q', '--filter', 'label=tier', '--filter', 'name=detach'])).stdout, `${name}\n`);
    assert.equal((await fcvm(['podman', 'ps', '-q', '--filter', 'status=starting'])).stdout, '');
    // podman's templates, with podman's field names.
    assert.equal((await fcvm(['podman', 'ps', '--filter', 'label=team=a', '--format', '{{.Names}} {{.State}} {{index .Labels "tier"}}'])).stdout, `${name} running web\n`);
    const table = await fcvm(['ps', '--filter', 'label=team=a', '--format', 'table {{.Names}}\t{{.Status}}']);
    // podman's STATUS text; no "(healthy)": the image has no health check.
    assert.match(table.stdout, new RegExp(`^NAMES\\s+STATUS\n${name}\\s+Up [^(\n]+\n$`), table.stdout);
    // podman's JSON keys, which scripts read with jq; the Id is a name every command takes.
    const json = JSON.parse((await fcvm(['ps', '--format', 'json'])).stdout) as { Names: string[]; Id: string; State: string }[];
    const mine = json.find((c) => c.Names[0] === name);
    assert.deepEqual([mine?.Id, mine?.State], [name, 'running']);
    assert.equal((await fcvm(['inspect', '-f', '{{.Id}} {{.State.Health.Status}}|', name])).stdout, `${name} |\n`, 'no health check: podman\'s ""');
    const state = await fcvm(['podman', 'inspect', '--format', '{{.State.Status}} {{.State.Running}} {{.Name}}', name]);
    assert.equal(state.stdout, `running true ${name}\n`, state.stderr);
    const badField = await fcvm(['inspect', '-f', '{{.Nope}}', name]);
    assert.equal(badField.exitCode, 125);
    assert.match(badField.stderr, /^fcvm: cannot apply --format: there is no field \.Nope/);
    // podman exec: the command's own options are its own.
    const lsd = await fcvm(['podman', 'exec', name, 'ls', '-d', '/etc']);
    assert.equal(lsd.stdout, '/etc\n', lsd.stderr);
    const running = await fcvm(['rm', name]);
    assert.equal(running.exitCode, 2, 'podman rm\'s code for a running container');
    assert.match(running.stderr, new RegExp(`^fcvm: VM "${name}" is running: rm takes only what ended`));
    const waiter = fcvm(['wait', name]);

    await waitFor(async () => (await fcvm(['logs', name])).stdout.includes('tick 2'), 60_000, 'ticks in the log');
    const logs = await fcvm(['logs', name]);
    assert.match(logs.stdout, /^started\ntick 0\ntick 1\ntick 2\n/);
    assert.equal(logs.stderr, 'to-err\n');
    const tail = await fcvm(['logs', '--tail', '1', name]);
    assert.match(tail.stdout, /^tick \d+\n$/);
    // -t: each line after its time, as podman prints it; --since and --until select by it.
    const stamped = await fcvm(['logs', '-t', name]);
    const times = stamped.stdout.trim().split('\n').map((l) => l.split(' ')[0]!);
    assert.match(stamped.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) started\n\S+ tick 0\n/);
    const tick1 = times[2]!;
    const since = await fcvm(['logs', '--since', tick1, '--until', tick1, name]);
    assert.equal(since.stdout, 'tick 1\n', since.stderr);
    assert.match((await fcvm(['logs', '--since', '1h', name])).stdout, /^started\ntick 0\n/);
    assert.equal((await fcvm(['logs', '--until', '1h', name])).stdout, '');
    follower = execa(process.execPath, ['--', CLI, 'logs', '-f', name], { reject: false, timeout: 120_000 });

    const inspected = await fcvm(['inspect', name]);
    assert.equal(inspected.exitCode, 0, inspected.stderr);
    const [info] = JSON.parse(inspected.stdout) as Array<Record<string, unknown> & { plan: Record<string, unknown>; transitions: { status: string }[] }>;
    assert.equal(info!.name, name);
    assert.equal(info!.pid, ready.pid);
    assert.equal(info!.detached, true);
    assert.deepEqual(info!.labels, { team: 'a', tier: 'web' });
    assert.deepEqual(info!.plan.command, ['sh', '-c', 'trap "echo got-usr1; exit 0" USR1; echo started; echo to-err >&2; i=0; while :; do echo tick $i; i=$((i+1)); sleep 1; done']);
    assert.equal(info!.plan.stopTimeout, 2);
    assert.deepEqual(info!.plan.podmanOptions, ['--stop-signal=USR1']);
    assert.deepEqual(info!.transitions.map((x) => x.status), ['starting', 'healthy']);
    assert.ok(existsSync(info!.logPath as string));
    // The labels are the container's own too, as the guest's podman shows them.
    const guestLabels = await fcvm(['exec', name, '--vm', '--', 'podman', 'inspect', '--format', '{{json .Config.Labels}}', name]);
    assert.equal(guestLabels.exitCode, 0, guestLabels.stderr);
    const inGuest = JSON.parse(guestLabels.stdout) as Record<string, string>;
    assert.deepEqual([inGuest.team, inGuest.tier], ['a', 'web'], guestLabels.stdout);

    // The completion script loads in bash and completes the VM's name.
    const completed = execFileSync('bash', ['-c', `fcvm() { "${process.execPath}" -- "${CLI}" "$@"; }
      eval "$(fcvm completion bash)"
      COMP_LINE="fcvm logs it-det"; COMP_POINT=\${#COMP_LINE}; _fcvm; echo "\${COMPREPLY[*]}"
      COMP_LINE="fcvm podman run --pull a"; COMP_POINT=\${#COMP_LINE}; _fcvm; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8', env: { ...process.env } });
    assert.equal(completed, `${name}\nalways\n`);

    const t1 = Date.now();
    const stop = await fcvm(['stop', name]);
    assert.equal(stop.exitCode, 0, stop.stderr);
    assert.equal(stop.stdout, `${name}\n`);
    t.diagnostic(`stop took ${Date.now() - t1} ms`);
    assert.equal(isSameProcessAlive(ready.pid, processStartTime(ready.pid) ?? -1), false, 'the supervisor is gone (or a zombie) when stop returns');
    assertNoLeftovers();

    const followed = await follower;
    assert.equal(followed.exitCode, 0, String(followed.stderr));
    assert.match(String(followed.stdout), /^started\ntick 0\n(tick \d+\n)+/, 'logs -f ends by itself when the VM does');

    // As podman stop of a container that exited: done already (its log is kept).
    const again = await fcvm(['stop', name]);
    assert.deepEqual([again.exitCode, again.stdout, again.stderr], [0, `${name}\n`, '']);
    const kept = await fcvm(['logs', name]);
    assert.equal(kept.exitCode, 0, 'a detached VM\'s log is kept after it ends');
    assert.match(kept.stdout, /^started\ntick 0\n/);
    assert.match(kept.stdout, /\ngot-usr1\n$/, 'stop sent --stop-signal, which the container handled');
    // Several names: each line starts with its VM's name, as podman's with its IDs; a
    // name without a log fails before anything is printed.
    const two = await fcvm(['logs', '--tail', '1', name, name]);
    assert.equal(two.stdout, `${name} got-usr1\n${name} got-usr1\n`, two.stderr);
    const missing = await fcvm(['logs', name, 'it-nosuch']);
    assert.deepEqual([missing.exitCode, missing.stdout], [125, '']);
    assert.match(missing.stderr, /^fcvm: no running VM named "it-nosuch", and no log of one/);
    // As podman inspect of an exited container: its last state.
    assert.equal((await fcvm(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', name])).stdout, 'exited 0\n');
    // wait: the running VM's supervisor answered when the container ended; the kept log answers after.
    assert.equal((await waiter).stdout, '0\n');
    assert.equal((await fcvm(['podman', 'wait', name])).stdout, '0\n');
    // rm takes the kept log, and then there is nothing left to remove.
    const rm = await fcvm(['podman', 'rm', name]);
    assert.equal(rm.stdout, `${name}\n`, rm.stderr);
    assert.equal((await fcvm(['logs', name])).exitCode, 125);
    assert.equal((await fcvm(['inspect', name])).exitCode, 125);
    assert.equal((await fcvm(['rm', name])).exitCode, 1);
    assert.equal((await fcvm(['rm', '--ignore', name])).exitCode, 0);
    // podman rm -f is quiet about a name that is not there, as --ignore: the usual cleanup line.
    const forced = await fcvm(['rm', '-f', name]);
    assert.deepEqual([forced.exitCode, forced.stdout, forced.stderr], [0, '', '']);
  } finally {
    follower?.kill('SIGKILL');
    await fcvm(['stop', name]);
    for (const f of existsSync(layout.logs) ? readdirSync(layout.logs) : []) if (f.startsWith(`${name}.`)) rmSync(join(layout.logs, f), { force: true });
  }
});

test('right after run -d, kill reaches the container; stop that kills after the grace keeps 137, as podman stop', async (t) => {
  if (!vmsAvailable(t)) return;
  const a = 'it-killearly';
  const b = 'it-stopcode';
  try {
    assert.equal((await fcvm(['podman', 'run', '-d', '--name', a, 'localhost/bb', '--', 'sh', '-c', 'trap "exit 7" USR1; while :; do sleep 1; done'])).exitCode, 0);
    // While its VM still starts: kill waits for the container, as exec does.
    const k = await fcvm(['kill', '-s', 'USR1', a]);
    assert.deepEqual([k.exitCode, k.stdout], [0, `${a}\n`], k.stderr);
    assert.equal((await fcvm(['wait', a])).stdout, '7\n');
    // PID 1 without a TERM handler: podman stop's SIGKILL after the grace reads 137.
    assert.equal((await fcvm(['podman', 'run', '-d', '--name', b, 'localhost/bb', '--', 'sleep', '300'])).exitCode, 0);
    assert.equal((await fcvm(['exec', b, '--', 'true'])).exitCode, 0);
    const s = await fcvm(['stop', '-t', '1', b]);
    assert.equal(s.exitCode, 0, s.stderr);
    assert.equal((await fcvm(['wait', b])).stdout, '137\n');
    assert.match((await fcvm(['ps', '-a', '--filter', `name=${b}`, '--format', '{{.Status}}'])).stdout, /^Exited \(137\)/);
  } finally {
    await fcvm(['rm', '-f', a, b]);
  }
  assertNoLeftovers();
});

test('a podman run that ended is kept as podman keeps an exited container (ps -a, inspect, logs, wait, rm); --rm keeps nothing; a new run of the name replaces it; a killed one is kept as 137, a failed -d one as 125', async (t) => {
  if (!vmsAvailable(t)) return;
  const [kept, gone, killed, failed] = ['it-ended', 'it-ended-rm', 'it-ended-kill', 'it-ended-fail'];
  const files = (name: string) => (existsSync(layout.logs) ? readdirSync(layout.logs) : []).filter((f) => f.startsWith(`${name}.`));
  try {
    const r = await fcvm(['podman', 'run', '--name', kept, '--label', 'ended=yes', 'localhost/bb', 'sh', '-c', 'echo out-line; echo err-line >&2; exit 3']);
    assert.equal(r.exitCode, 3, r.stderr);
    assert.equal((await fcvm(['ps', '-q', '--filter', 'label=ended=yes'])).stdout, '', 'not among the running');
    const all = await fcvm(['ps', '-a', '--filter', 'label=ended=yes', '--format', '{{.Names}}|{{.State}}|{{.Status}}']);
    assert.match(all.stdout, new RegExp(`^${kept}\\|exited\\|Exited \\(3\\) .+ ago\n$`), all.stdout);
    assert.equal((await fcvm(['ps', '-q', '--filter', 'status=exited', '--filter', `name=^${kept}$`])).stdout, `${kept}\n`, 'status=exited lists ended VMs without -a, as podman\'s');
    assert.equal((await fcvm(['ps', '-q', '--filter', 'exited=3', '--filter', `name=^${kept}$`])).stdout, `${kept}\n`);
    assert.equal((await fcvm(['ps', '-q', '--filter', 'exited=4', '--filter', `name=^${kept}$`])).stdout, '');
    assert.equal((await fcvm(['ps', '-a', '--format', '{{.Pid}} {{.ExitCode}}', '--filter', `name=^${kept}$`])).stdout, '0 3\n', 'no process is an ended VM\'s');
    const json = JSON.parse((await fcvm(['ps', '-a', '--format', 'json'])).stdout) as { Names: string[]; Exited: boolean; ExitCode: number }[];
    assert.deepEqual(json.filter((c) => c.Names[0] === kept).map((c) => [c.Exited, c.ExitCode]), [[true, 3]]);
    assert.equal((await fcvm(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{.State.Running}} {{.State.Pid}} {{.Config.Labels.ended}}', kept])).stdout, 'exited 3 false 0 yes\n');
    const finished = Date.parse((await fcvm(['inspect', '-f', '{{.State.FinishedAt}}', kept])).stdout.trim());
    assert.ok(finished <= Date.now() && Date.now() - finished < 120_000, `FinishedAt ${finished}`);
    const logs = await fcvm(['logs', kept]);
    assert.deepEqual([logs.stdout, logs.stderr], ['out-line\n', 'err-line\n']);
    assert.equal((await fcvm(['wait', kept])).stdout, '3\n');
    const exec = await fcvm(['exec', kept, '--', 'true']);
    assert.equal(exec.exitCode, 125);
    assert.match(exec.stderr, new RegExp(`^fcvm: VM "${kept}" has ended \\(exit 3\\): only a running VM takes this\\. See its output with "fcvm logs ${kept}"`), 'exec says it ended, as podman\'s "can only exec in running containers"');

    // A new run of the name replaces the ended one, as the seed's reruns expect.
    assert.equal((await fcvm(['podman', 'run', '--name', kept, 'localhost/bb', 'sh', '-c', 'exit 5'])).exitCode, 5);
    const again = await fcvm(['ps', '-a', '--format', '{{.Names}} {{.Status}}', '--filter', `name=${kept}`]);
    assert.match(again.stdout, new RegExp(`^${kept} Exited \\(5\\) .+ ago\n$`), 'one row: the new run');
    assert.equal(files(kept).length, 2, `one log and one record: ${files(kept)}`);

    assert.equal((await fcvm(['rm', kept])).stdout, `${kept}\n`);
    assert.equal((await fcvm(['ps', '-a', '-q', '--filter', `name=${kept}`])).stdout, '');
    assert.equal((await fcvm(['inspect', kept])).exitCode, 125);
    assert.deepEqual(files(kept), [], 'rm took the log and the record');

    const rmRun = await fcvm(['podman', 'run', '--rm', '--name', gone, 'localhost/bb', 'true']);
    assert.equal(rmRun.exitCode, 0, rmRun.stderr);
    assert.equal((await fcvm(['ps', '-a', '-q', '--filter', `name=${gone}`])).stdout, '');
    assert.deepEqual(files(gone), [], '--rm keeps nothing');

    // A run whose supervisor is killed is kept as exited 137 by the next command, which reaps it.
    const victim = spawnFcvm(['podman', 'run', '--name', killed, 'localhost/bb', 'sh', '-c', 'echo up; sleep 600']);
    await waitFor(async () => (await fcvm(['logs', killed])).stdout === 'up\n', 180_000, `${killed} to run`);
    const pid = (await ls()).find((v) => v.name === killed)!.pid;
    const waiting = fcvm(['wait', killed]);
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(pid, 'SIGKILL');
    await victim;
    assert.equal((await waiting).stdout, '137\n', 'a wait already waiting reaps the VM and answers from its record');
    const reaped = await fcvm(['ps', '-a', '--format', '{{.Names}} {{.Status}}', '--filter', `name=${killed}`]);
    assert.match(reaped.stdout, new RegExp(`^${killed} Exited \\(137\\) .+ ago\n$`), reaped.stdout);
    assert.equal((await fcvm(['wait', killed])).stdout, '137\n');
    const why = await fcvm(['logs', killed]);
    assert.equal(why.stdout, 'up\n');
    assert.match(why.stderr, /^fcvm: its supervisor \(pid \d+\) was killed; the next fcvm command stopped the VM\n$/, 'the log says why it ended');

    // A detached run that fails before its container runs is kept as exited 125, its log saying why.
    assert.equal((await fcvm(['podman', 'run', '-d', '--name', failed, '--tls-verify=false', '172.30.0.1:1/nope:1'])).exitCode, 0);
    assert.equal((await fcvm(['wait', failed])).stdout, '125\n');
    assert.match((await fcvm(['ps', '-a', '--format', '{{.Status}}', '--filter', `name=${failed}`])).stdout, /^Exited \(125\) .+ ago\n$/);
    assert.match((await fcvm(['logs', failed])).stderr, /could not pull image "172\.30\.0\.1:1\/nope:1"/);
  } finally {
    await fcvm(['rm', '-f', kept, gone, killed, failed]);
  }
  assertNoLeftovers();
});

test('--replace stops a running VM of the name first, so the new one gets its name and its port', async (t) => {
  if (!vmsAvailable(t)) return;
  const name = 'it-replace';
  const port = await freePort();
  try {
    const first = await fcvm(['podman', 'run', '-d', '--name', name, '--stop-timeout', '1', '-p', `${port}:80`, 'localhost/bb', 'sleep', '600']);
    assert.equal(first.exitCode, 0, first.stderr);
    const old = await waitFor(async () => (await ls()).find((v) => v.name === name && v.status === 'healthy'), 180_000, 'the first VM');
    const taken = await fcvm(['podman', 'run', '--rm', '--name', name, 'localhost/bb', 'true']);
    assert.equal(taken.exitCode, 125);
    assert.match(taken.stderr, new RegExp(`a VM named "${name}" is already running`));
    const r = await fcvm(['podman', 'run', '--rm', '--replace', '--name', name, '-p', `${port}:80`, 'localhost/bb', 'echo', 'replaced']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, 'replaced\n');
    assert.ok(!(await ls()).some((v) => v.pid === old.pid), 'the first VM is gone');
  } finally {
    await fcvm(['rm', '-f', name]);
  }
  assertNoLeftovers();
});

test('kill signals the container as podman kill; wait reports the code its handler exits with; rm -f stops a running VM', async (t) => {
  if (!vmsAvailable(t)) return;
  const [a, b] = ['it-kill', 'it-rmf'];
  try {
    const started = await Promise.all([a, b].map((n) => fcvm(['podman', 'run', '-d', '--name', n, '--stop-timeout', '1', 'localhost/bb', '--',
      'sh', '-c', 'trap "echo got-hup" HUP; trap "echo got-term; exit 5" TERM; echo ready; while :; do sleep 1; done'])));
    for (const s of started) assert.equal(s.exitCode, 0, s.stderr);
    for (const n of [a, b]) await waitFor(async () => (await fcvm(['logs', n])).stdout.includes('ready'), 180_000, `${n} ready`);
    const waiter = fcvm(['podman', 'wait', a]);
    const hup = await fcvm(['kill', '--signal', 'hup', a]);
    assert.equal(hup.stdout, `${a}\n`, hup.stderr);
    await waitFor(async () => (await fcvm(['logs', a])).stdout.includes('got-hup'), 30_000, 'the HUP handled');
    assert.equal((await fcvm(['ls', '-q', '--filter', `name=${a}`])).stdout, `${a}\n`, 'a handled signal leaves it running');
    const bad = await fcvm(['kill', '-s', 'NOPE', a]);
    assert.equal(bad.exitCode, 125);
    assert.match(bad.stderr, /^fcvm: invalid --signal "NOPE": not a signal\./);
    assert.equal((await fcvm(['podman', 'kill', '-s', '15', a])).exitCode, 0);
    assert.equal((await waiter).stdout, '5\n', 'wait reports the code of the TERM handler');
    assert.equal((await fcvm(['kill', a])).exitCode, 125, 'nothing left to kill');
    // wait returned once the VM was torn down; a name with nothing to wait for fails after the others, in one line.
    const both = await fcvm(['wait', a, 'it-nosuch']);
    assert.equal(both.stdout, '5\n');
    assert.equal(both.exitCode, 125);
    assert.match(both.stderr, /^fcvm: no VM named "it-nosuch", running or ended with a kept log\. [^\n]*\n$/);
    const rmA = await fcvm(['rm', a]);
    assert.equal(rmA.stdout, `${a}\n`, rmA.stderr);
    assert.equal((await fcvm(['rm', a])).exitCode, 1, 'podman rm\'s code for a container that is not there');
    // rm -f stops it (SIGTERM, whose handler exits 5), then takes its kept log.
    const rmf = await fcvm(['rm', '-f', b]);
    assert.equal(rmf.stdout, `${b}\n`, rmf.stderr);
    assert.equal((await fcvm(['logs', b])).exitCode, 125, 'its log went with it');
    assertNoLeftovers();
  } finally {
    await fcvm(['rm', '-f', '-t', '0', '--ignore', a, b]);
  }
});

test('stop refuses what is not a running VM, and never signals another process', async () => {
  const bystander = spawn('sleep', ['30']);
  try {
    const r = await fcvm(['stop', '--pid', String(bystander.pid)]);
    assert.equal(r.exitCode, 125);
    assert.equal(r.stderr, `fcvm: no running VM with pid ${bystander.pid}. Run "fcvm ls" to see running VMs\n`);
    assert.equal(bystander.exitCode, null, 'the bystander lives');
    const none = await fcvm(['logs', 'no-such-vm']);
    assert.equal(none.exitCode, 125);
    assert.match(none.stderr, /^fcvm: no running VM named "no-such-vm", and no log of one\. /);
    assert.match((await fcvm(['stop'])).stderr, /^fcvm: no VM given\. Usage: fcvm stop/);
  } finally {
    bystander.kill();
  }
});
