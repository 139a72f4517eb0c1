import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { assertNoLeftovers, CLI, fcvm, spawnFcvm, vmsAvailable, waitFor } from '../helpers.js';
import { spawnOnPty } from '../pty.js';

const VM = 'it-exec';
/** busybox ash's prompt, which may be followed by a cursor-position query. */
const PROMPT = /# (\x1b\[6n)?$/;
let supervisor: ReturnType<typeof spawnFcvm> | undefined;
let ready = false;

before(async () => {
  if (process.getuid?.() !== 0) return;
  supervisor = spawnFcvm(['podman', 'run', '--name', VM, '--stop-timeout', '2', 'localhost/bb', '--', 'httpd', '-f', '-p', '8080', '-h', '/www']);
  await waitFor(async () => {
    const ls = await fcvm(['ls', '--json']);
    return (JSON.parse(ls.stdout || '[]') as { name: string; status: string }[]).some((v) => v.name === VM && v.status === 'healthy');
  }, 180_000, `${VM} to be healthy`);
  ready = true;
});

after(async () => {
  supervisor?.kill('SIGTERM');
  await supervisor;
});

test('exec runs in the container by default, and in the guest OS with --vm', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const inCtr = await fcvm(['exec', VM, '--', 'cat', '/www/index.html']);
  assert.equal(inCtr.exitCode, 0, inCtr.stderr);
  assert.equal(inCtr.stdout, '<h1>hello from fcvm</h1>\n');
  const inVm = await fcvm(['exec', VM, '--vm', '--', 'cat', '/etc/debian_version']);
  assert.equal(inVm.exitCode, 0, inVm.stderr);
  assert.match(inVm.stdout, /^12\./);
  const notInCtr = await fcvm(['exec', VM, '--', 'cat', '/etc/debian_version']);
  assert.notEqual(notInCtr.exitCode, 0, 'the busybox container has no /etc/debian_version');
});

test('exit codes 0, 1, 5 and 127 come back; stdout and stderr stay apart; env and workdir apply', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  for (const code of [0, 1, 5]) {
    const r = await fcvm(['exec', VM, '--', 'sh', '-c', `echo out-${code}; echo err-${code} >&2; exit ${code}`]);
    assert.equal(r.exitCode, code, r.stderr);
    assert.equal(r.stdout, `out-${code}\n`);
    assert.equal(r.stderr, `err-${code}\n`);
  }
  const missing = await fcvm(['exec', VM, '--', 'no-such-command']);
  assert.equal(missing.exitCode, 127);
  const env = await fcvm(['exec', VM, '-e', 'A=1,B=two', '-w', '/www', '--', 'sh', '-c', 'echo $A $B $(pwd)']);
  assert.equal(env.stdout, '1 two /www\n');
  const pid = (JSON.parse((await fcvm(['ls', '--json'])).stdout) as { name: string; pid: number }[]).find((v) => v.name === VM)!.pid;
  const byPid = await fcvm(['exec', '--pid', String(pid), '--', 'sh', '-c', 'exit 5']);
  assert.equal(byPid.exitCode, 5);
});

test('stdin is forwarded with EOF, on a pipe that opens by name', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const r = await execa(process.execPath, [CLI, 'exec', '-i', VM, '--', 'sh', '-c', 'cat /dev/stdin; echo "[eof]"'], { input: 'hello\nworld\n', reject: false, stripFinalNewline: false });
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.equal(r.stdout, 'hello\nworld\n[eof]\n');
});

test('6 MiB of stdin to a command that reads it 2 s later arrives whole, in the container and with --vm', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const input = randomBytes(6 << 20);
  const want = `${createHash('sha256').update(input).digest('hex')}  -\n`;
  for (const where of [[], ['--vm']]) {
    const r = await execa(process.execPath, [CLI, 'exec', '-i', ...where, VM, '--', 'sh', '-c', 'sleep 2; sha256sum'], { input, reject: false, stripFinalNewline: false });
    assert.equal(r.exitCode, 0, String(r.stderr));
    assert.equal(r.stdout, want, where.join(' ') || 'in the container');
  }
});

test('output and input nobody reads for a while wait at their writers: the agent holds little, other execs go on, every byte arrives', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  // 200 MB to a reader that starts 20 s later. The agent once read on and held it all:
  // a longer stall filled the guest's memory, and the OOM killer took the agent and the VM.
  const stalled = execa('bash', ['-c', `"${process.execPath}" -- "${CLI}" exec ${VM} --vm -- head -c 200000000 /dev/zero | (sleep 20; wc -c)`], { reject: false, timeout: 240_000 });
  let stalledDone = false;
  void stalled.finally(() => (stalledDone = true));
  // Only the stalled reader's own channel waits: another exec of the VM goes through
  // meanwhile. (Without windows per channel it waited for the reader's whole 20 s.)
  await new Promise((r) => setTimeout(r, 4000));
  const t0 = Date.now();
  const other = await fcvm(['exec', VM, '--vm', '--', 'echo', 'through']);
  const took = Date.now() - t0;
  assert.equal(other.exitCode, 0, other.stderr);
  assert.equal(other.stdout.trim(), 'through');
  assert.ok(took < 8000, `the other exec took ${took} ms`);
  assert.equal(stalledDone, false, 'the other exec ended only after the stalled reader');
  const r = await stalled;
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.equal(String(r.stdout).trim(), '200000000');
  // Output that ends while part of it still waits in the guest for a late reader's
  // window: the exit waits behind the bytes (it once overtook them, and they were lost).
  for (const bytes of [1_000_000, 1_600_000]) {
    const late = await execa('bash', ['-c', `"${process.execPath}" -- "${CLI}" exec ${VM} -- head -c ${bytes} /dev/zero | (sleep 8; wc -c)`], { reject: false, timeout: 120_000 });
    assert.equal(late.exitCode, 0, String(late.stderr));
    assert.equal(String(late.stdout).trim(), String(bytes));
  }
  // Input that a process does not read waits on the host too: the agent once buffered it all.
  const input = await execa('bash', ['-c', `head -c 200000000 /dev/zero | "${process.execPath}" -- "${CLI}" exec -i ${VM} --vm -- sh -c 'sleep 20; wc -c'`], { reject: false, timeout: 240_000 });
  assert.equal(input.exitCode, 0, String(input.stderr));
  assert.equal(String(input.stdout).trim(), '200000000');
  const peak = await fcvm(['exec', VM, '--vm', '--', 'sh', '-c', 'for p in /proc/[0-9]*; do [ $p = /proc/$$ ] || ! grep -q agent.mjs $p/cmdline 2>/dev/null || grep VmHWM $p/status; done']);
  assert.equal(peak.exitCode, 0, peak.stderr);
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(peak.stdout)?.[1]);
  assert.ok(kib > 0 && kib < 150 * 1024, `the agent's peak memory: ${peak.stdout.trim()}`);
});

test('a TTY session shows prompt and echo, follows resizes, and ends with the shell', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const s = await spawnOnPty(process.execPath, [CLI, 'exec', '-it', VM, '--', 'sh'], 100, 30);
  try {
    await s.expect(PROMPT, 60_000);
    s.write('echo $((6*7))\r');
    await s.expect(/echo \$\(\(6\*7\)\)[\r\n]+42\r*\n/, 30_000);
    s.write('stty size\r');
    await s.expect(/\n30 100\r*\n/, 30_000);
    s.resize(132, 50);
    await new Promise((r) => setTimeout(r, 1000));
    const mark = s.output().length;
    s.write('stty size\r');
    await s.expect(/\n50 132\r*\n/, 30_000, mark);
    // The container's own terminal, as podman exec -t gives: its devpts names it, and
    // its session is the shell's; started by the container's exec spawner.
    s.write('echo "$(tty) $TERM $(cat /proc/$PPID/comm)"\r');
    await s.expect(/\n\/dev\/pts\/\d+ xterm fcvm-exec\r*\n/, 30_000, mark);
    s.write('exit 3\r');
    assert.equal(await s.exited, 3);
  } finally {
    s.close();
  }
});

test('a terminal that hangs up during exec -it ends it with 129, not with a crash of Node', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const s = await spawnOnPty(process.execPath, [CLI, 'exec', '-it', VM, '--', 'sh']);
  try {
    await s.expect(PROMPT, 60_000);
    s.write('sleep 100\r');
    await new Promise((r) => setTimeout(r, 1500));
    // Node restores the terminal's mode at exit and aborted on the hung-up terminal's EIO.
    s.hangUp();
    assert.deepEqual(await s.ended, { code: 129, signal: null });
  } finally {
    s.close();
  }
});

test('from a terminal, exec is interactive with a TTY without -it', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const s = await spawnOnPty(process.execPath, [CLI, 'exec', VM, '--', 'sh']);
  try {
    await s.expect(PROMPT, 60_000);
    s.write('exit\r');
    assert.equal(await s.exited, 0);
  } finally {
    s.close();
  }
});

test('a TTY exec\'s output reaches the local terminal byte for byte, as podman\'s raw mode gives it (no "\\r\\r\\n")', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const s = await spawnOnPty(process.execPath, [CLI, 'exec', '-t', VM, '--', 'printf', 'a\\nb\\n']);
  try {
    await s.expect(/b\r+\n/, 60_000);
    assert.equal(await s.exited, 0);
    // The remote terminal makes "\n" "\r\n"; the local one must add nothing.
    assert.equal(s.output(), 'a\r\nb\r\n');
  } finally {
    s.close();
  }
});

test('20 concurrent execs into one VM each get their own output and exit code', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const runs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => fcvm(['exec', VM, '--', 'sh', '-c', `echo run-${i}; echo err-${i} >&2; exit ${i}`])),
  );
  runs.forEach((r, i) => {
    assert.equal(r.exitCode, i, r.stderr);
    assert.equal(r.stdout, `run-${i}\n`);
    assert.equal(r.stderr, `err-${i}\n`);
  });
});

test('a signal to fcvm exec ends the remote process', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const p = execa(process.execPath, [CLI, 'exec', VM, '--', 'sleep', '300'], { reject: false, forceKillAfterDelay: false });
  await new Promise((r) => setTimeout(r, 4000));
  p.kill('SIGTERM');
  const r = await p;
  assert.equal(r.exitCode, 143, String(r.stderr));
  const ps = await fcvm(['exec', VM, '--', 'ps']);
  assert.doesNotMatch(ps.stdout, /sleep 300/);
});

test('a reader that goes away ends the exec: no crash, the remote command gets SIGPIPE', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const r = await execa('bash', ['-c', `"${process.execPath}" -- "${CLI}" exec ${VM} -- yes | head -2; echo "rc=\${PIPESTATUS[0]}" >&2`],
    { reject: false, timeout: 60_000, stdin: 'ignore' });
  assert.equal(r.stdout, 'y\ny');
  assert.doesNotMatch(String(r.stderr), /Unhandled|EPIPE|at .*\.m?js:\d+/, 'fcvm crashed on the closed pipe');
  assert.match(String(r.stderr), /rc=141$/);
  const ps = await fcvm(['exec', VM, '--', 'ps']);
  assert.doesNotMatch(ps.stdout, /\byes\b/);
  // A command that ignores SIGPIPE (as Python, Node and Go do) is ended all the same
  // (killed after a short grace), and fcvm still exits as a command killed by SIGPIPE.
  const deaf = await execa('bash', ['-c', `"${process.execPath}" -- "${CLI}" exec ${VM} -- sh -c 'trap "" PIPE; while true; do echo y; done' | head -2; echo "rc=\${PIPESTATUS[0]}" >&2`],
    { reject: false, timeout: 60_000, stdin: 'ignore' });
  assert.equal(deaf.stdout, 'y\ny');
  assert.match(String(deaf.stderr), /rc=141$/);
});

test('a command that is not executable exits 126, as does an unknown user; a missing workdir 127', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  const r = await fcvm(['exec', VM, '--', '/www/index.html']);
  assert.equal(r.exitCode, 126, r.stderr);
  assert.match(r.stderr, /Permission denied/);
  assert.equal((await fcvm(['exec', VM, '-w', '/no/such/dir', '--', 'true'])).exitCode, 127);
  // A user the container does not have: podman exec's 255 becomes podman run's 126.
  const nobody = await fcvm(['exec', VM, '-u', 'nosuchuser', '--', 'true']);
  assert.equal(nobody.exitCode, 126, nobody.stderr);
  assert.match(nobody.stderr, /unable to find user nosuchuser/);
});

test('an exec runs as the container\'s own process does: user, groups, capabilities, no_new_privs, seccomp, umask, rlimits, namespaces, cgroup', async (t) => {
  if (!vmsAvailable(t)) return;
  const name = 'it-exec-spec';
  const sup = spawnFcvm(['podman', 'run', '--name', name, '--stop-timeout', '1', '-u', '1000:1000', '--group-add', '1234', '--cap-drop', 'ALL', '--cap-add', 'CHOWN',
    '--security-opt', 'no-new-privileges', '--ulimit', 'nofile=256:512', '--umask', '0077', 'localhost/bb', '--', 'sleep', '100000']);
  t.after(async () => {
    sup.kill('SIGTERM');
    await sup;
  });
  await waitFor(async () => (JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string }[]).some((v) => v.name === name && v.status === 'healthy'), 180_000, `${name} to be healthy`);
  const view = (pid: string) => `grep -E "^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Umask):" /proc/${pid}/status; cat /proc/${pid}/limits /proc/${pid}/cgroup; `
    + `for n in cgroup ipc mnt net pid uts; do readlink /proc/${pid}/ns/$n; done; readlink /proc/${pid}/root`;
  const r = await fcvm(['exec', name, '--', 'sh', '-c', `${view('1')}; echo ====; ${view('self')}`]);
  assert.equal(r.exitCode, 0, r.stderr);
  const [main, exec] = r.stdout.split('====\n');
  assert.equal(exec, main, 'the exec\'s view equals PID 1\'s');
  const parent = await fcvm(['exec', name, '--', 'sh', '-c', 'cat /proc/$PPID/comm']);
  assert.equal(parent.stdout, 'fcvm-exec\n', 'started by the container\'s exec spawner, not by a runtime per exec');
  assert.match(main!, /^Uid:\s+1000\s/m);
  assert.match(main!, /^Groups:.*\b1234\b/m);
  assert.match(main!, /^NoNewPrivs:\s+1$/m);
  assert.match(main!, /^Seccomp:\s+2$/m);
  assert.match(main!, /^Max open files\s+256\s+512\s/m);
  // And what it starts inherits it: a child of the exec shows the same.
  const child = await fcvm(['exec', name, '--', 'sh', '-c', `sh -c '${view('$$')}'`]);
  assert.equal(child.stdout, main, 'a child of the exec');
});

test('exec into a missing VM is a clear error', async () => {
  const r = await fcvm(['exec', 'no-such-vm', '--', 'true']);
  assert.equal(r.exitCode, 125);
  assert.equal(r.stderr, 'fcvm: no running VM named "no-such-vm". Run "fcvm ls" to see running VMs\n');
  const p = await fcvm(['exec', '--pid', '999999', '--', 'true']);
  assert.match(p.stderr, /no running VM with pid 999999/);
});

test('the supervisor ends cleanly after the exec tests', async (t) => {
  if (!vmsAvailable(t) || !ready) return;
  supervisor!.kill('SIGTERM');
  const r = await supervisor!;
  assert.equal(r.exitCode, 143, String(r.all));
  assertNoLeftovers();
});
