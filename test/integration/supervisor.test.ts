import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoLeftovers, fcvm, spawnFcvm, vmsAvailable, waitFor } from '../helpers.js';

interface Listed {
  name: string;
  pid: number;
  vmmPid: number;
  status: string;
  transitions: { status: string; at: string; detail?: string }[];
}

async function listed(name: string): Promise<Listed | undefined> {
  const r = await fcvm(['ls', '--json']);
  return (JSON.parse(r.stdout || '[]') as Listed[]).find((v) => v.name === name);
}

test('a killed VMM is noticed at once, reported with the console tail, and cleaned up', async (t) => {
  if (!vmsAvailable(t)) return;
  const p = spawnFcvm(['podman', 'run', '--name', 'it-vmmkill', 'localhost/bb', '--', 'sleep', '600']);
  const v = await waitFor(async () => {
    const l = await listed('it-vmmkill');
    return l?.status === 'healthy' ? l : undefined;
  }, 180_000, 'the VM to run');
  const t0 = Date.now();
  process.kill(v.vmmPid, 'SIGKILL');
  const r = await p;
  assert.ok(Date.now() - t0 < 5000, `noticed after ${Date.now() - t0} ms`);
  assert.equal(r.exitCode, 125);
  assert.match(String(r.all), /fcvm: the VM stopped unexpectedly \(VMM exited with SIGKILL\); guest console ends with: .+/);
  assertNoLeftovers();
});

test('a guest that powers itself off ends the run with a clear error', async (t) => {
  if (!vmsAvailable(t)) return;
  const p = spawnFcvm(['podman', 'run', '--name', 'it-poweroff', 'localhost/bb', '--', 'sleep', '600']);
  await waitFor(async () => (await listed('it-poweroff'))?.status === 'healthy', 180_000, 'the VM to run');
  await fcvm(['exec', 'it-poweroff', '--vm', '--', '/run/fcvm/busybox', 'poweroff', '-f']);
  const r = await p;
  assert.equal(r.exitCode, 125);
  assert.match(String(r.all), /the VM stopped unexpectedly/);
  assertNoLeftovers();
});

test('an agent that never starts ends in a timeout error that names what did not happen', async (t) => {
  if (!vmsAvailable(t)) return;
  const t0 = Date.now();
  const r = await fcvm(['podman', 'run', '--boot-timeout', '20', 'localhost/bb', '--', 'true'], { env: { FCVM_KERNEL_ARGS: 'fcvm.agent=off' } });
  assert.ok(Date.now() - t0 < 40_000, `took ${Date.now() - t0} ms`);
  assert.equal(r.exitCode, 125);
  assert.match(r.stderr, /^fcvm: the guest agent's hello did not happen within 20s; guest console ends with: .*agent disabled by fcvm\.agent=off/);
  assertNoLeftovers();
});

test('a guest kernel panic ends in a clear error with the panic on the console', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await fcvm(['podman', 'run', '--boot-timeout', '60', 'localhost/bb', '--', 'true'], { env: { FCVM_KERNEL_ARGS: 'rdinit=/no-such-init' } });
  assert.equal(r.exitCode, 125);
  assert.match(r.stderr, /^fcvm: the VM stopped unexpectedly \(the guest stopped before its agent answered.*Kernel panic/);
  assertNoLeftovers();
});

test('podman\'s --health-cmd on an image without a HEALTHCHECK, and --no-healthcheck over one', async (t) => {
  if (!vmsAvailable(t)) return;
  const p = spawnFcvm(['podman', 'run', '--name', 'it-hcmd', '--stop-timeout', '2', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '1s', '--health-retries', '1', 'localhost/bb', '--', 'sleep', '600']);
  try {
    await waitFor(async () => (await listed('it-hcmd'))?.status === 'unhealthy', 180_000, 'unhealthy');
    const touch = await fcvm(['exec', 'it-hcmd', '--', 'touch', '/tmp/ok']);
    assert.equal(touch.exitCode, 0, touch.stderr);
    await waitFor(async () => (await listed('it-hcmd'))?.status === 'healthy', 60_000, 'healthy');
    const ps = await fcvm(['ps', '--format', '{{.Names}}|{{.Status}}']);
    assert.match(ps.stdout, /^it-hcmd\|Up .+ \(healthy\)$/m);
  } finally {
    p.kill('SIGTERM');
    await p;
  }
  // bb-health's own HEALTHCHECK never passes here (no /tmp/ok): without it, a started container is healthy.
  const q = spawnFcvm(['podman', 'run', '--name', 'it-nohc', '--stop-timeout', '2', '--no-healthcheck', 'localhost/bb-health', '--', 'sleep', '600']);
  try {
    const v = await waitFor(async () => {
      const l = await listed('it-nohc');
      return l?.status === 'healthy' ? l : undefined;
    }, 180_000, 'healthy');
    assert.deepEqual(v.transitions.map((x) => x.status), ['starting', 'healthy']);
    const ps = await fcvm(['ps', '--format', '{{.Names}}|{{.Status}}']);
    assert.match(ps.stdout, /^it-nohc\|Up [^(]+$/m);
  } finally {
    q.kill('SIGTERM');
    await q;
  }
  assertNoLeftovers();
});

test('an image HEALTHCHECK drives the status: running, unhealthy, then healthy, with timestamps', async (t) => {
  if (!vmsAvailable(t)) return;
  const p = spawnFcvm(['podman', 'run', '--name', 'it-health', '--stop-timeout', '2', 'localhost/bb-health', '--', 'httpd', '-f', '-p', '8080', '-h', '/www']);
  try {
    await waitFor(async () => (await listed('it-health'))?.status === 'unhealthy', 180_000, 'unhealthy');
    const touch = await fcvm(['exec', 'it-health', '--', 'touch', '/tmp/ok']);
    assert.equal(touch.exitCode, 0, touch.stderr);
    const v = await waitFor(async () => {
      const l = await listed('it-health');
      return l?.status === 'healthy' ? l : undefined;
    }, 60_000, 'healthy');
    assert.deepEqual(v.transitions.map((x) => x.status), ['starting', 'running', 'unhealthy', 'healthy']);
    const times = v.transitions.map((x) => Date.parse(x.at));
    assert.deepEqual(times, [...times].sort((a, b) => a - b));
    const table = await fcvm(['ls']);
    assert.match(table.stdout, /it-health\s+\d+\s+healthy/);
  } finally {
    p.kill('SIGTERM');
    await p;
  }
  assertNoLeftovers();
});
