import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { assertNoLeftovers, fcvm, spawnFcvm, stateFile, vmmPids, vmsAvailable, waitFor, hypervisor } from '../helpers.js';

interface Listed {
  name: string;
  pid: number;
  vmmPid?: number;
  status: string;
  image: string;
  hypervisor: string;
  accel: string;
  uptimeSeconds: number;
}

async function ls(): Promise<Listed[]> {
  const r = await fcvm(['ls', '--json']);
  assert.equal(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout) as Listed[];
}

/** Waits until `name` runs; if its supervisor exits first, fails with what it printed. */
async function waitRunning(name: string, proc?: ReturnType<typeof spawnFcvm>): Promise<Listed> {
  let exited: string | undefined;
  void proc?.then((r) => (exited = `exit ${r.exitCode}: ${String(r.all).slice(-1500)}`));
  return waitFor(async () => {
    if (exited) throw new Error(`the supervisor of ${name} ended before it ran (${exited})`);
    return (await ls()).find((v) => v.name === name && ['running', 'healthy'].includes(v.status));
  }, 180_000, `${name} to run`);
}

test('two VMs run at once; a duplicate name is refused; SIGTERM stops each cleanly with 143', async (t) => {
  if (!vmsAvailable(t)) return;
  const a = spawnFcvm(['podman', 'run', '--name', 'it-a', '--stop-timeout', '2', 'localhost/bb', '--', 'sleep', '600']);
  const b = spawnFcvm(['podman', 'run', '--name', 'it-b', '--stop-timeout', '2', 'localhost/bb', '--', 'sleep', '600']);
  try {
    const [va, vb] = await Promise.all([waitRunning('it-a', a), waitRunning('it-b', b)]);
    assert.notEqual(va.vmmPid, vb.vmmPid);
    assert.equal(va.image, 'localhost/bb');
    assert.equal(va.hypervisor, hypervisor);
    assert.ok(['kvm', 'tcg'].includes(va.accel));
    const byPid = await fcvm(['ls', '--json', '--pid', String(vb.pid)]);
    assert.deepEqual(JSON.parse(byPid.stdout).map((v: Listed) => v.name), ['it-b']);
    const table = await fcvm(['ls']);
    assert.match(table.stdout, /^NAME\s+PID\s+STATUS\s+IMAGE\s+HYPERVISOR\s+ACCEL\s+UPTIME/);
    assert.match(table.stdout, new RegExp(`it-a\\s+\\d+\\s+healthy\\s+localhost/bb\\s+${hypervisor}`));

    const dup = await fcvm(['podman', 'run', '--name', 'it-a', 'localhost/bb', '--', 'true']);
    assert.equal(dup.exitCode, 125);
    assert.match(dup.stderr, new RegExp(`a VM named "it-a" is already running \\(pid ${va.pid}\\)`));

    a.kill('SIGTERM');
    b.kill('SIGTERM');
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.exitCode, 143, String(ra.all));
    assert.equal(rb.exitCode, 143, String(rb.all));
    assertNoLeftovers();
  } finally {
    a.kill('SIGKILL');
    b.kill('SIGKILL');
  }
});

test('SIGTERM to a run whose container traps it: fcvm exits with the container\'s own code, as podman run', async (t) => {
  if (!vmsAvailable(t)) return;
  const p = spawnFcvm(['podman', 'run', '--name', 'it-trap', '--stop-timeout', '20', 'localhost/bb', '--', 'sh', '-c', 'trap "echo caught; exit 9" TERM; while :; do sleep 0.2; done']);
  try {
    await waitRunning('it-trap', p);
    p.kill('SIGTERM');
    const r = await p;
    assert.equal(r.exitCode, 9, String(r.all));
    assert.match(String(r.all), /caught/);
    assertNoLeftovers();
  } finally {
    p.kill('SIGKILL');
  }
});

test('a second SIGINT skips the stop grace period', async (t) => {
  if (!vmsAvailable(t)) return;
  // httpd as PID 1 ignores SIGTERM, so without the second signal this would take the full 60 s grace.
  const p = spawnFcvm(['podman', 'run', '--name', 'it-twice', '--stop-timeout', '60', 'localhost/bb', '--', 'httpd', '-f', '-p', '8080']);
  try {
    await waitRunning('it-twice', p);
    const t0 = Date.now();
    p.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 1500));
    p.kill('SIGINT');
    const r = await p;
    assert.equal(r.exitCode, 130, String(r.all));
    assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
    // The kept VM says what the run said, as podman's ps -a does after Ctrl-C.
    const kept = await fcvm(['ps', '-a', '--filter', 'name=^it-twice$', '--format', '{{.ExitCode}}']);
    assert.equal(kept.stdout.trim(), '130', kept.stderr);
    assert.equal((await fcvm(['rm', 'it-twice'])).exitCode, 0);
    assertNoLeftovers();
  } finally {
    p.kill('SIGKILL');
  }
});

test('SIGKILL of the supervisor takes the VMM with it; the next command reaps the rest', async (t) => {
  if (!vmsAvailable(t)) return;
  const p = spawnFcvm(['podman', 'run', '--name', 'it-kill', 'localhost/bb', '--', 'sleep', '600']);
  try {
    const v = await waitRunning('it-kill', p);
    assert.ok(v.vmmPid && vmmPids().includes(v.vmmPid));
    p.kill('SIGKILL');
    await p;
    await waitFor(() => !vmmPids().includes(v.vmmPid!), 5000, 'the VMM to die');
    assert.ok(existsSync(stateFile('it-kill')), 'the state file outlives a SIGKILL until the next command');
    assert.deepEqual(await ls(), []);
    assertNoLeftovers();
  } finally {
    p.kill('SIGKILL');
  }
});

test('leftovers of killed writers (partial artifacts, exports, temp files) go with the next command', async (t) => {
  if (!vmsAvailable(t)) return;
  const { mkdirSync, writeFileSync, existsSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { layout } = await import('../helpers.js');
  const { ownerTag } = await import('../../src/util/owner-tag.js');
  const dead = join(layout.artifacts, '.rootfs-0000.4194304-7.partial');
  const deadExport = join(layout.imageCache, `.${'0'.repeat(64)}.4194304-7.partial`);
  const deadTmp = join(layout.vmState, '.x.json.ab.4194304-7.tmp');
  const live = join(layout.artifacts, `.rootfs-1111.${ownerTag()}.partial`);
  mkdirSync(join(dead, 'tree'), { recursive: true });
  mkdirSync(live, { recursive: true });
  mkdirSync(layout.vmState, { recursive: true });
  writeFileSync(deadExport, 'x');
  writeFileSync(deadTmp, 'x');
  try {
    assert.equal((await fcvm(['ls'])).exitCode, 0);
    assert.equal(existsSync(dead), false);
    assert.equal(existsSync(deadExport), false);
    assert.equal(existsSync(deadTmp), false);
    assert.equal(existsSync(live), true, 'a live writer keeps its partial');
  } finally {
    const { rmSync } = await import('node:fs');
    rmSync(live, { recursive: true, force: true });
  }
});
