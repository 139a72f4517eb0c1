import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI, fcvm, layout, spawnFcvm, stateFile, vmsAvailable, waitFor } from '../helpers.js';
import { leftoverCounts } from '../leftovers.js';
import { coldBootSteps } from '../../src/vm/boot-steps.js';
import { cloneSteps } from '../../src/vm/clone-steps.js';
import { FAILPOINTS } from '../../src/util/failpoint.js';

/**
 * SIGKILL at every named step of boot and restore, inside snapshot create and serve,
 * and of QEMU, a server mid-attach and `fcvm exec` mid-stream: after the next fcvm
 * command nothing is left (processes, netns, veths, TAPs, iptables rules, RAM files,
 * run directories, state, server files), and a snapshot is never half-visible.
 */
const TAG = 'it-kill-snap';

/** Runs fcvm with a failpoint and returns how it ended. */
async function killedAt(point: string, args: string[]): Promise<{ signal: string | undefined; out: string }> {
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false, stdin: 'ignore', all: true, timeout: 180_000, env: { FCVM_FAILPOINT: `${point}:kill`, FCVM_NO_SNAPSHOT: '1' },
  });
  return { signal: r.signal ?? undefined, out: String(r.all) };
}

/** The next fcvm command reaps; then nothing may be left. */
async function assertCleanAfterNextCommand(what: string): Promise<void> {
  const ls = await fcvm(['ls']);
  assert.equal(ls.exitCode, 0, ls.stderr);
  const l = leftoverCounts();
  assert.equal(l.total, 0, `${what}: leftovers after the next command: ${l.detail}`);
}

const run = (name: string) => ['podman', 'run', '--name', name, '--network', 'bridged', '--publish', '127.0.0.1:18931:80', 'localhost/bb', '--', 'sleep', '600'];

async function startSource(name: string, env: Record<string, string> = {}) {
  // Cold: snapshot failpoints must fire in `snapshot create`, not in a startup snapshot.
  const p = spawnFcvm(run(name), { FCVM_NO_SNAPSHOT: '1', ...env });
  await waitFor(async () => {
    if (p.exitCode !== null && p.exitCode !== undefined) throw new Error(`source exited: ${String((await p).all)}`);
    const ls = JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string }[];
    return ls.find((v) => v.name === name)?.status === 'healthy';
  }, 180_000, `${name} to be healthy`);
  // Wrapped: an async function returning the process itself would wait for its end.
  return { p };
}

test('a supervisor killed after any boot step or inside the network step leaves nothing after the next command', async (t) => {
  if (!vmsAvailable(t)) return;
  const points = [...coldBootSteps.map((s) => `step:${s.name}`), ...FAILPOINTS.network];
  assert.ok(points.length >= 16, points.join(' '));
  for (const point of points) {
    const r = await killedAt(point, run('it-kill'));
    assert.equal(r.signal, 'SIGKILL', `${point}: the failpoint did not fire:\n${r.out}`);
    await assertCleanAfterNextCommand(point);
  }
});

test('a supervisor killed anywhere inside snapshot create leaves no snapshot and nothing else', async (t) => {
  if (!vmsAvailable(t)) return;
  for (const point of FAILPOINTS.snapshot) {
    const { p: src } = await startSource('it-ksrc', { FCVM_FAILPOINT: `${point}:kill` });
    const r = await fcvm(['snapshot', 'create', 'it-ksrc', '--tag', TAG]);
    const s = await src;
    assert.equal(s.signal, 'SIGKILL', `${point}: the failpoint did not fire:\n${String(s.all).slice(-1000)}`);
    assert.equal(r.exitCode, 125, r.stderr);
    assert.match(r.stderr, /^fcvm: VM "it-ksrc" cannot be snapshotted: its supervisor went away during the snapshot/, point);
    await assertCleanAfterNextCommand(point);
    // Never half-visible: not listed, not loadable, no directory under its tag.
    assert.ok(!existsSync(join(layout.snapshots, TAG)), `${point}: a snapshot directory appeared`);
    const list = await fcvm(['snapshots', '--json']);
    assert.ok(!list.stdout.includes(TAG), `${point}: listed: ${list.stdout}`);
  }
});

test('a clone or a memory server killed at any step leaves nothing; a server killed mid-attach fails its clone cleanly', async (t) => {
  if (!vmsAvailable(t)) return;
  const { p: src } = await startSource('it-ksrc');
  const made = await fcvm(['snapshot', 'create', 'it-ksrc', '--tag', TAG]);
  assert.equal(made.exitCode, 0, made.stderr);
  src.kill('SIGTERM');
  await src;
  try {
    const steps = cloneSteps({ source: { kind: 'snapshot', tag: TAG } } as Parameters<typeof cloneSteps>[0]).map((s) => `step:${s.name}`);
    for (const point of steps) {
      const r = await killedAt(point, ['snapshot', 'run', '--snapshot', TAG, '--name', 'it-kclone', '--publish', '127.0.0.1:18932:80']);
      assert.equal(r.signal, 'SIGKILL', `${point}: the failpoint did not fire:\n${r.out}`);
      await assertCleanAfterNextCommand(`clone ${point}`);
    }
    for (const point of FAILPOINTS.serve.filter((p) => p !== 'serve:attach')) {
      const r = await killedAt(point, ['snapshot', 'serve', TAG]);
      assert.equal(r.signal, 'SIGKILL', `${point}: the failpoint did not fire:\n${r.out}`);
      await assertCleanAfterNextCommand(point);
    }
    // The server dies while a clone attaches: the clone ends with a clear error.
    const server = spawnFcvm(['snapshot', 'serve', TAG], { FCVM_FAILPOINT: 'serve:attach:kill' });
    await waitFor(() => existsSync(join(layout.serveState, `${server.pid}.json`)), 60_000, 'the server to start');
    const clone = await fcvm(['snapshot', 'run', '--pid', String(server.pid), '--name', 'it-kclone']);
    assert.equal((await server).signal, 'SIGKILL');
    assert.equal(clone.exitCode, 125, clone.stderr);
    assert.match(clone.stderr, new RegExp(`^fcvm: no snapshot server with pid ${server.pid}\\. Run "fcvm snapshot ls"[^\\n]*\\n$`));
    await assertCleanAfterNextCommand('serve:attach');
  } finally {
    await fcvm(['snapshots', 'delete', TAG]);
  }
});

test('QEMU killed mid-boot and fcvm exec killed mid-stream leave nothing behind', async (t) => {
  if (!vmsAvailable(t)) return;
  // QEMU, as soon as it is there.
  const p = spawnFcvm(run('it-kqemu'));
  const vmm = await waitFor(async () => {
    const s = await import('node:fs/promises').then((fs) => fs.readFile(stateFile('it-kqemu'), 'utf8')).catch(() => '');
    return s ? (JSON.parse(s) as { vmmPid?: number }).vmmPid : undefined;
  }, 120_000, 'QEMU to start');
  process.kill(vmm, 'SIGKILL');
  const r = await p;
  assert.equal(r.exitCode, 125, String(r.all));
  assert.match(String(r.all), /fcvm: the VM stopped unexpectedly/);
  await assertCleanAfterNextCommand('QEMU killed mid-boot');

  // fcvm exec, while a command streams: the remote command goes with it; the VM stays.
  const { p: src } = await startSource('it-kexec');
  try {
    const exec = execa(process.execPath, [CLI, 'exec', 'it-kexec', '--', 'sh', '-c', 'yes fcvm-kill-marker'], { reject: false, stdin: 'ignore', buffer: false });
    await new Promise<void>((resolve) => exec.stdout!.once('data', () => resolve()));
    exec.kill('SIGKILL');
    await exec;
    await waitFor(async () => {
      const ps = await fcvm(['exec', 'it-kexec', '--', 'ps']);
      return ps.exitCode === 0 && !ps.stdout.includes('fcvm-kill-marker');
    }, 30_000, 'the remote command to end');
    const again = await fcvm(['exec', 'it-kexec', '--', 'echo', 'still here']);
    assert.equal(again.stdout, 'still here\n');
  } finally {
    src.kill('SIGTERM');
    await src;
  }
  await assertCleanAfterNextCommand('exec killed mid-stream');
});
