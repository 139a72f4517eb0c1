import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { CLI, fcvm, spawnFcvm, vmsUnavailableReason, waitFor } from '../helpers.js';
import { leftoverCounts, leftovers } from '../leftovers.js';
import { freePort, httpGet } from '../net-helpers.js';
import { poolMemberSteps } from '../../src/vm/pool-member.js';

/**
 * Warm pools (`snapshot serve --pool N`): clones wait restored, with nothing of anybody's
 * (no name, no address, no ports), and get their name, network, ports, hostname, clock
 * and randomness when handed out; the pool refills; a killed server leaves nothing.
 * The source maps a volume: a pooled clone serves it from its hand-out on, or another
 * host directory in its place (--map).
 */
const SRC = 'it-pool-src';
const TAG = 'it-pool';
const HTTPD = ['sh', '-c', 'mkdir -p /www && echo pooled > /www/index.html && exec httpd -f -p 80 -h /www'];

interface Listed { name: string; status: string }
const ls = async () => JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as Listed[];

/** A server with a pool, and its stderr as it comes. */
function servePool(size: number, extra: string[] = []): { proc: ResultPromise; out: () => string } {
  const proc = spawnFcvm(['snapshot', 'serve', TAG, '--pool', String(size), '--network', 'bridged', ...extra]);
  let text = '';
  proc.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  return { proc, out: () => text };
}

/** How many clones the server last said were ready (it says so at each change). */
const lastReady = (s: string) => Number([...s.matchAll(/(\d+) (?:clone\(s\) )?ready/g)].pop()?.[1] ?? 0);

describe('warm pools', { concurrency: false }, () => {
  let skip = false;
  let snapshotAt = 0;
  // The source's volume, and another host directory a clone maps in its place.
  const volA = mkdtempSync(join(tmpdir(), 'it-pool-a-'));
  const volB = mkdtempSync(join(tmpdir(), 'it-pool-b-'));
  writeFileSync(join(volA, 'f'), 'from A\n');
  writeFileSync(join(volB, 'f'), 'from B\n');

  before(async () => {
    const why = vmsUnavailableReason();
    if (why) {
      process.stderr.write(`\n*** SKIPPED warm pools: ${why} ***\n`);
      return void (skip = true);
    }
    await fcvm(['snapshots', 'delete', TAG]);
    const src = spawnFcvm(['podman', 'run', '--name', SRC, '--stop-timeout', '1', '--network', 'bridged', '--no-snapshot', '--map', `${volA}:/data`, 'localhost/bb', '--', ...HTTPD]);
    await waitFor(async () => (await ls()).some((v) => v.name === SRC && v.status === 'healthy') || src.exitCode !== null, 240_000, 'the source');
    await waitFor(async () => (await fcvm(['exec', SRC, '--', 'cat', '/www/index.html'])).stdout.includes('pooled'), 60_000, 'the source\'s httpd');
    const r = await fcvm(['snapshot', 'create', SRC, '--tag', TAG]);
    assert.equal(r.exitCode, 0, r.stderr);
    snapshotAt = Date.now();
    src.kill('SIGTERM');
    await src;
  });

  after(async () => {
    rmSync(volA, { recursive: true, force: true });
    rmSync(volB, { recursive: true, force: true });
    if (skip) return;
    assert.equal((await fcvm(['snapshots', 'delete', TAG])).exitCode, 0);
  });

  test('pooled clones each get their own name, hostname, randomness, clock and ports at hand-out; the pool refills', async (t) => {
    if (skip) return t.skip();
    const { proc, out } = servePool(2);
    try {
      await waitFor(() => lastReady(out()) === 2 || proc.exitCode !== null, 300_000, 'a full pool');
      assert.equal(proc.exitCode, null, out());
      // Waiting clones are nobody's: no VM by name, no veth, no iptables rule, no port.
      assert.deepEqual(await ls(), []);
      const l = leftovers();
      assert.deepEqual([l.veths, l.iptablesRules, l.stateFiles], [[], [], []], 'a waiting clone holds no network of its own');
      // Let the snapshot's clock fall behind: the hand-out must set it.
      await waitFor(() => Date.now() - snapshotAt > 5_000, 10_000, 'time to pass');

      const ports = [await freePort(), await freePort()];
      const names = ['it-pool-a', 'it-pool-b'];
      for (const [i, name] of names.entries()) {
        // The second remaps the source's volume to another host directory.
        const map = i === 1 ? ['--map', `${volB}:/data`] : [];
        const r = await fcvm(['snapshot', 'run', '--pid', String(proc.pid), '-d', '--name', name, '--publish', `127.0.0.1:${ports[i]}:80`, ...map]);
        assert.equal(r.exitCode, 0, r.stderr);
        assert.equal(r.stdout, `${name}\n`);
      }
      assert.match(out(), /pool: handed out "it-pool-a"/);
      assert.match(out(), /pool: handed out "it-pool-b"/);
      const probe = ['sh', '-c', 'hostname; date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo'];
      const seen = await Promise.all(names.map(async (name, i) => {
        const body = await waitFor(() => httpGet('127.0.0.1', ports[i]!).catch(() => undefined), 60_000, `${name}'s port`);
        assert.match(String(body), /pooled/);
        const r = await fcvm(['exec', name, '--vm', '--', ...probe]);
        assert.equal(r.exitCode, 0, r.stderr);
        const [host, clock, rand] = r.stdout.trim().split('\n');
        return { host, clock: Number(clock), rand };
      }));
      assert.deepEqual(seen.map((s) => s.host), names, 'each clone has its own hostname');
      assert.notEqual(seen[0]!.rand, seen[1]!.rand, 'each clone has randomness of its own');
      for (const s of seen) assert.ok(Math.abs(s.clock * 1000 - Date.now()) < 5_000, `the guest clock ${s.clock} is the host's`);
      // The other's port is not this one's: each clone answers on its own only.
      assert.equal((await ls()).map((v) => v.name).sort().join(), names.join());
      // Volumes: the source's, or the one mapped at hand-out; both ways, and a host edit seen.
      assert.equal((await fcvm(['exec', names[0]!, '--', 'cat', '/data/f'])).stdout, 'from A\n');
      assert.equal((await fcvm(['exec', names[1]!, '--', 'cat', '/data/f'])).stdout, 'from B\n');
      assert.equal((await fcvm(['exec', names[1]!, '--', 'sh', '-c', 'echo from the clone > /data/g'])).exitCode, 0);
      assert.equal(readFileSync(join(volB, 'g'), 'utf8'), 'from the clone\n');
      writeFileSync(join(volA, 'f'), 'edited on the host\n');
      await waitFor(async () => (await fcvm(['exec', names[0]!, '--', 'cat', '/data/f'])).stdout === 'edited on the host\n', 10_000, 'the host edit in the clone');

      // --exec from the pool: the clone is gone when the command's exit code comes back.
      await waitFor(() => lastReady(out()) === 2, 300_000, 'the pool to refill');
      const e = await fcvm(['snapshot', 'run', '--pid', String(proc.pid), '--name', 'it-pool-x', '--exec', 'sh -c "cat /www/index.html /data/f; exit 7"']);
      assert.equal(e.exitCode, 7, e.stderr);
      assert.equal(e.stdout, 'pooled\nedited on the host\n');
      assert.match(out(), /pool: handed out "it-pool-x"/);
      assert.ok(!(await ls()).some((v) => v.name === 'it-pool-x'), 'the --exec clone is gone');
      // -i with --exec is the command's stdin, not the container's: a pooled clone takes it.
      await waitFor(() => lastReady(out()) === 2, 300_000, 'the pool to refill');
      const piped = await execa(process.execPath, ['--', CLI, 'snapshot', 'run', '--pid', String(proc.pid), '-i', '--exec', 'cat'], { input: 'piped in\n', reject: false, timeout: 240_000 });
      assert.equal(piped.exitCode, 0, String(piped.stderr));
      assert.equal(piped.stdout, 'piped in');
      assert.match(out(), /pool: handed out "fcvm-[0-9a-f]+"/);

      // A hand-out that would fail (a name in use) says why, and costs the pool no clone.
      await waitFor(() => lastReady(out()) === 2, 300_000, 'the pool to refill again');
      const dup = await fcvm(['snapshot', 'run', '--pid', String(proc.pid), '-d', '--name', 'it-pool-a']);
      assert.equal(dup.exitCode, 125);
      assert.match(dup.stderr, /^fcvm: a VM named "it-pool-a" is already running/);
      assert.match(out(), /pool: not handed out: a VM named "it-pool-a" is already running/);
      assert.equal(lastReady(out()), 2, 'the refusal spent a pooled clone');
    } finally {
      proc.kill('SIGTERM');
      await proc;
    }
    const after = await fcvm(['ls']);
    assert.equal(after.exitCode, 0);
    const l = leftoverCounts();
    assert.equal(l.total, 0, `leftovers after the server ended: ${l.detail}`);
  });

  test('a rootless pool: the clone\'s port is added to its running VMM at hand-out', async (t) => {
    if (skip) return t.skip();
    // Its own source on rootless: a clone keeps its source's NIC features (see the report on bridged -> rootless).
    const TAG_R = `${TAG}-r`;
    await fcvm(['snapshots', 'delete', TAG_R]);
    const src = spawnFcvm(['podman', 'run', '--name', `${SRC}-r`, '--stop-timeout', '1', '--network', 'rootless', '--no-snapshot', 'localhost/bb', '--', ...HTTPD]);
    await waitFor(async () => (await fcvm(['exec', `${SRC}-r`, '--', 'cat', '/www/index.html'])).stdout.includes('pooled') || src.exitCode !== null, 240_000, 'the rootless source');
    const snap = await fcvm(['snapshot', 'create', `${SRC}-r`, '--tag', TAG_R]);
    assert.equal(snap.exitCode, 0, snap.stderr);
    src.kill('SIGTERM');
    await src;
    t.after(async () => void (await fcvm(['snapshots', 'delete', TAG_R])));
    const proc = spawnFcvm(['snapshot', 'serve', TAG_R, '--pool', '1', '--network', 'rootless']);
    let text = '';
    proc.stderr!.on('data', (d: Buffer) => (text += d.toString()));
    const port = await freePort();
    try {
      await waitFor(() => lastReady(text) === 1 || proc.exitCode !== null, 300_000, 'a rootless member');
      assert.equal(proc.exitCode, null, text);
      // Before the hand-out nothing listens there.
      await assert.rejects(httpGet('127.0.0.1', port));
      const r = await fcvm(['snapshot', 'run', '--pid', String(proc.pid), '-d', '--name', 'it-pool-r', '--publish', `127.0.0.1:${port}:80`]);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.match(text, /pool: handed out "it-pool-r"/);
      const body = await waitFor(() => httpGet('127.0.0.1', port).catch(() => undefined), 60_000, 'the rootless clone\'s port');
      assert.match(String(body), /pooled/);
      assert.equal((await fcvm(['exec', 'it-pool-r', '--vm', '--', 'hostname'])).stdout, 'it-pool-r\n');
      // A second clone cannot have the same port: it fails in one line, the first keeps it.
      await waitFor(() => lastReady(text) === 1, 300_000, 'the refill');
      const dup = await fcvm(['snapshot', 'run', '--pid', String(proc.pid), '-d', '--name', 'it-pool-r2', '--publish', `127.0.0.1:${port}:80`]);
      assert.equal(dup.exitCode, 125);
      assert.match(dup.stderr, /^fcvm: [^\n]*port[^\n]*\n$/);
    } finally {
      proc.kill('SIGTERM');
      await proc;
    }
    assert.equal((await fcvm(['ls'])).exitCode, 0);
    const l = leftoverCounts();
    assert.equal(l.total, 0, `leftovers after the server ended: ${l.detail}`);
  });

  test('a pooled clone killed at any step of its start or its hand-out leaves nothing; its requester gets one line', async (t) => {
    if (skip) return t.skip();
    const link = { send: () => {}, handout: new Promise<never>(() => {}), ended: new Promise<void>(() => {}) };
    const names = poolMemberSteps({ servePid: 1, network: 'bridged' }, link).map((s) => s.name);
    const handout = names.indexOf('handout');
    for (const [i, step] of names.entries()) {
      const proc = spawnFcvm(['snapshot', 'serve', TAG, '--pool', '1', '--network', 'bridged'], { FCVM_FAILPOINT: `step:${step}:kill` });
      let text = '';
      proc.stderr!.on('data', (d: Buffer) => (text += d.toString()));
      try {
        if (i < handout) {
          await waitFor(() => /not refilling/.test(text) || proc.exitCode !== null, 120_000, `members killed at ${step}`);
          assert.equal(proc.exitCode, null, text);
        } else {
          await waitFor(() => lastReady(text) === 1 || proc.exitCode !== null, 120_000, `a member to wait (${step})`);
          const r = await fcvm(['snapshot', 'run', '--pid', String(proc.pid), '-d', '--name', 'it-pool-k']);
          assert.equal(r.exitCode, 125, `${step}: ${r.stdout}${r.stderr}`);
          assert.match(r.stderr, /^fcvm: the pooled clone \(pid \d+\) ended while it was handed out[^\n]*\n$/, step);
        }
      } finally {
        proc.kill('SIGTERM');
        await proc;
      }
      assert.equal((await fcvm(['ls'])).exitCode, 0);
      const l = leftoverCounts();
      assert.equal(l.total, 0, `killed at ${step}: leftovers after the next command: ${l.detail}`);
    }
  });

  test('a server killed with a full pool leaves nothing after the next command', async (t) => {
    if (skip) return t.skip();
    const { proc, out } = servePool(2);
    await waitFor(() => lastReady(out()) === 2 || proc.exitCode !== null, 300_000, 'a full pool');
    assert.equal(proc.exitCode, null, out());
    proc.kill('SIGKILL');
    await proc;
    // The members notice their server is gone and wind down; whatever a kill leaves, the next command reaps.
    await waitFor(() => leftovers().processes?.length === 0, 60_000, 'the pooled clones to end');
    assert.equal((await fcvm(['ls'])).exitCode, 0);
    const l = leftoverCounts();
    assert.equal(l.total, 0, `leftovers after the next command: ${l.detail}`);
  });
});
