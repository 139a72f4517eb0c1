import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, cpSync, existsSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { assertNoLeftovers, CLI, ctrLines, fcvm, layout, spawnFcvm, vmsUnavailableReason, waitFor } from '../helpers.js';
import { leftoverCounts } from '../leftovers.js';

/**
 * Startup snapshots: `podman run` of a host image saves a snapshot of the VM once the
 * guest is up and the image loaded, and later runs with the same key restore it and run
 * their own container: same output, exit code and env as a cold run, a clock and
 * randomness of their own. The key misses on another image, memory or network mode; a
 * corrupt entry is rebuilt with one line; prune removes entries.
 */
interface Prepared { result: 'created' | 'hit'; key: string; tag: string; ms: number }
const NAME = 'it-startup';
const RUN = ['podman', 'run', '--name', NAME, '--network', 'none', 'localhost/bb', '--'];

async function prepare(...args: string[]): Promise<Prepared> {
  const r = await fcvm(['podman', 'prepare', '--network', 'none', ...args]);
  assert.equal(r.exitCode, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, r.stdout);
  return JSON.parse(lines[0]!) as Prepared;
}

/** Lines of fcvm's own (not the container's) on stderr. */
const ownLines = (stderr: string) => stderr.split('\n').filter((l) => l && !l.startsWith('[ctr:'));

describe('startup snapshots', { concurrency: false }, () => {
  let skip: string | undefined;
  let key = '';
  before(async () => {
    skip = vmsUnavailableReason();
    if (skip) return void process.stderr.write(`\n*** SKIPPED startup snapshots: ${skip} ***\n`);
    assert.equal((await fcvm(['snapshots', 'prune', '--all'])).exitCode, 0);
  });
  after(async () => {
    if (skip) return;
    await fcvm(['snapshots', 'prune', '--all']);
    assertNoLeftovers();
  });

  test('prepare saves the snapshot once; a hit runs each command exactly as a cold run does', async (t) => {
    if (skip) return t.skip(skip);
    const made = await prepare('localhost/bb');
    assert.equal(made.result, 'created');
    assert.match(made.tag, /^startup-[0-9a-f]{24}$/);
    const again = await prepare('localhost/bb');
    assert.deepEqual([again.result, again.key], ['hit', made.key]);
    key = made.key;
    const commands = [
      ['sh', '-c', 'echo out; echo err >&2; exit 3'],
      ['sh', '-c', 'env | sort; hostname; id; pwd'],
      ['sh', '-c', 'ls / | tr "\\n" " "; cat /proc/self/status | grep -E "^(Cap|NoNewPrivs|Seccomp)"; ulimit -n'],
      ['nosuchcommand'],
    ];
    for (const cmd of commands) {
      const cold = await fcvm([...RUN.slice(0, 2), '--no-snapshot', ...RUN.slice(2), ...cmd]);
      const hit = await fcvm(['--log-level', 'debug', ...RUN, ...cmd]);
      assert.match(hit.stderr, /step restore done/, 'the run restored the startup snapshot');
      assert.doesNotMatch(hit.stderr, /step boot /);
      const what = cmd.join(' ');
      assert.equal(hit.exitCode, cold.exitCode, `${what}: exit code\n${hit.stderr.slice(-2000)}`);
      assert.deepEqual(ctrLines(hit, 'out'), ctrLines(cold, 'out'), `${what}: stdout`);
      assert.deepEqual(ctrLines(hit, 'err'), ctrLines(cold, 'err'), `${what}: stderr`);
    }
  });

  test('each hit has the host clock, and randomness of its own', async (t) => {
    if (skip) return t.skip(skip);
    const probe = ['sh', '-c', 'date +%s; cat /proc/sys/kernel/random/uuid; head -c 16 /dev/urandom | od -An -tx1'];
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const r = await fcvm([...RUN, ...probe]);
      assert.equal(r.exitCode, 0, r.stderr);
      const [date, uuid, bytes] = ctrLines(r, 'out');
      assert.ok(Math.abs(Number(date) - Date.now() / 1000) < 10, `guest clock ${date}`);
      runs.push({ uuid, bytes });
    }
    assert.notEqual(runs[0]!.uuid, runs[1]!.uuid);
    assert.notEqual(runs[0]!.bytes, runs[1]!.bytes);
  });

  test('another image, memory size or network mode misses the cache', async (t) => {
    if (skip) return t.skip(skip);
    const keys = new Set([key]);
    for (const args of [['--mem', '640', 'localhost/bb'], ['localhost/bb-cmd']]) {
      const r = await prepare(...args);
      assert.equal(r.result, 'created', args.join(' '));
      keys.add(r.key);
    }
    const rootless = await fcvm(['podman', 'prepare', '--network', 'rootless', 'localhost/bb']);
    assert.equal(rootless.exitCode, 0, rootless.stderr);
    keys.add((JSON.parse(rootless.stdout) as Prepared).key);
    assert.equal(keys.size, 4);
    const listed = JSON.parse((await fcvm(['snapshots', '--json'])).stdout) as { tag: string; startup?: { key: string } }[];
    assert.deepEqual(listed.filter((s) => s.startup).map((s) => s.startup!.key).sort(), [...keys].sort());
  });

  test('a corrupt entry, or one from another version, is rebuilt with one line', async (t) => {
    if (skip) return t.skip(skip);
    const dir = join(layout.snapshots, `startup-${key.slice(0, 24)}`);
    // One byte of guest RAM flipped, the size unchanged.
    const fd = openSync(join(dir, 'memory'), 'r+');
    writeSync(fd, Buffer.from([0x5a]), 0, 1, 1 << 20);
    closeSync(fd);
    const r = await fcvm([...RUN, 'sh', '-c', 'echo fine; exit 4']);
    assert.equal(r.exitCode, 4, r.stderr);
    assert.deepEqual(ctrLines(r, 'out'), ['fine']);
    const own = ownLines(r.stderr);
    assert.equal(own.length, 1, r.stderr);
    assert.match(own[0]!, /^fcvm: startup snapshot "startup-[0-9a-f]{24}" is unusable \(.*"memory" does not match its checksum\); booting cold and saving it again$/);
    assert.equal((await prepare('localhost/bb')).result, 'hit');
    // Another version's meta.json.
    const meta = join(dir, 'meta.json');
    writeFileSync(meta, readFileSync(meta, 'utf8').replace(/"schema": \d+/, '"schema": 999'));
    const v = await fcvm([...RUN, 'true']);
    assert.equal(v.exitCode, 0, v.stderr);
    assert.match(ownLines(v.stderr).join('\n'), /^fcvm: startup snapshot "startup-[0-9a-f]{24}" is unusable \(.*schema version 999.*\); booting cold and saving it again$/);
    assert.equal((await prepare('localhost/bb')).result, 'hit');
  });

  test('a VM started from a startup snapshot can itself be snapshotted and cloned', async (t) => {
    if (skip) return t.skip(skip);
    const p = spawnFcvm(['--log-level', 'debug', ...RUN, 'sh', '-c', 'echo from-hit > /tmp/mark; sleep 600']);
    try {
      await waitFor(async () => {
        const ls = JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string }[];
        return ls.find((v) => v.name === NAME)?.status === 'healthy';
      }, 120_000, 'the run to be healthy');
      const made = await fcvm(['snapshot', 'create', NAME, '--tag', 'it-startup-src']);
      assert.equal(made.exitCode, 0, made.stderr);
      const c = await fcvm(['snapshot', 'run', '--snapshot', 'it-startup-src', '--exec', 'cat /tmp/mark']);
      assert.equal(c.exitCode, 0, c.stderr);
      assert.equal(c.stdout.trim(), 'from-hit');
    } finally {
      p.kill('SIGTERM');
      const out = await p;
      assert.match(String(out.all), /step restore done/, 'the source was a hit');
      await fcvm(['snapshots', 'delete', 'it-startup-src']);
    }
  });

  test('a run killed while it saves its startup snapshot leaves nothing, and no entry half-visible', async (t) => {
    if (skip) return t.skip(skip);
    for (const point of ['step:startup', 'snapshot:prepared', 'snapshot:paused', 'snapshot:saved', 'step:startup-snapshot', 'snapshot:complete']) {
      await fcvm(['snapshots', 'prune', '--all']);
      const r = await execa(process.execPath, [CLI, ...RUN, 'true'], { reject: false, stdin: 'ignore', all: true, timeout: 180_000, env: { FCVM_FAILPOINT: `${point}:kill` } });
      assert.equal(r.signal, 'SIGKILL', `${point}: the failpoint did not fire:\n${String(r.all).slice(-1500)}`);
      assert.equal((await fcvm(['ls'])).exitCode, 0);
      const l = leftoverCounts();
      assert.equal(l.total, 0, `${point}: leftovers after the next command: ${l.detail}`);
      const listed = JSON.parse((await fcvm(['snapshots', '--json'])).stdout) as { tag: string; startup?: unknown; error?: string }[];
      assert.deepEqual(listed.filter((s) => s.tag.startsWith('startup-')), [], `${point}: a startup entry is visible`);
    }
  });

  test('prune removes startup snapshots by size, and --no-snapshot saves none', async (t) => {
    if (skip) return t.skip(skip);
    const bad = await fcvm(['snapshots', 'prune']);
    assert.equal(bad.exitCode, 125);
    assert.match(bad.stderr, /say what to prune/);
    // The startup cache's prefix is no user's to take; and a snapshot under a tag of that
    // prefix that the cache could not have made (one made before the prefix was refused)
    // is never pruned.
    const mine = await fcvm(['snapshot', 'create', 'nosuchvm', '--tag', 'startup-prod-warm']);
    assert.equal(mine.exitCode, 125);
    assert.match(mine.stderr, /^fcvm: invalid --tag "startup-prod-warm": [^\n]*startup cache[^\n]*\n$/);
    const entry = await prepare('localhost/bb');
    assert.equal(entry.result, 'created');
    const kept = join(layout.snapshots, 'startup-prod-warm');
    cpSync(join(layout.snapshots, entry.tag), kept, { recursive: true });
    const r = await fcvm(['snapshots', 'prune', '--max-size', '1K', '--json']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { removed: { tag: string }[] }).removed.map((e) => e.tag), [entry.tag]);
    assert.ok(existsSync(kept), 'prune removed a snapshot the cache did not make');
    rmSync(kept, { recursive: true });
    const none = await fcvm([...RUN.slice(0, 2), '--no-snapshot', ...RUN.slice(2), 'true']);
    assert.equal(none.exitCode, 0, none.stderr);
    const listed = JSON.parse((await fcvm(['snapshots', '--json'])).stdout) as { startup?: unknown }[];
    assert.equal(listed.filter((s) => s.startup).length, 0);
  });
});
