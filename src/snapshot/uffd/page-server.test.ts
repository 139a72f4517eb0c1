import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PageServer, type PageServerEvents } from './page-server.js';
import type { HarnessPlan, HarnessReport } from './harness.js';

const MiB = 2 ** 20;
const HARNESS = fileURLToPath(new URL('./harness.js', import.meta.url));

/** Real userfaultfd needs root here (/dev/userfaultfd is 0600, unprivileged_userfaultfd=0). */
function uffdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for userfaultfd';
  if (!existsSync('/dev/userfaultfd') && !existsSync('/proc/sys/vm/unprivileged_userfaultfd')) return 'the kernel has no userfaultfd';
  return undefined;
}

function skipUnlessUffd(t: TestContext): boolean {
  const why = uffdUnavailable();
  if (!why) return true;
  process.stderr.write(`\n*** SKIPPED ${t.name}: ${why} ***\n`);
  t.skip(why);
  return false;
}

interface Run {
  child: ChildProcess;
  done: Promise<{ report?: HarnessReport; signal: NodeJS.Signals | null; code: number | null; stderr: string }>;
}

/** Every harness started, so none is left faulting on a server that went away. */
const children = new Set<ChildProcess>();

function harness(plan: HarnessPlan): Run {
  let child!: ChildProcess;
  const done = new Promise<Awaited<Run['done']>>((resolve) => {
    child = execFile(process.execPath, [HARNESS, JSON.stringify(plan)], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const e = err as (Error & { signal?: NodeJS.Signals; code?: number }) | null;
      let report: HarnessReport | undefined;
      try {
        report = JSON.parse(stdout) as HarnessReport;
      } catch {
        // no report: it failed or was killed
      }
      resolve({ report, signal: e?.signal ?? null, code: typeof e?.code === 'number' ? e.code : 0, stderr });
    });
  });
  children.add(child);
  void done.then(() => children.delete(child));
  return { child, done };
}

/** The next event of `kind` for client `id`. */
function next<K extends keyof PageServerEvents>(server: PageServer, kind: K, id: string): Promise<PageServerEvents[K][0]> {
  return new Promise((resolve) => {
    const on = (m: PageServerEvents[K][0]) => {
      if (m.id !== id) return;
      server.off(kind, on as never);
      resolve(m);
    };
    server.on(kind, on as never);
  });
}

/** This process's uffds and pidfds: what a served client holds. */
const clientFds = () => readdirSync('/proc/self/fd').filter((fd) => {
  try {
    return /^anon_inode:\[(userfaultfd|pidfd)\]$/.test(readlinkSync(`/proc/self/fd/${fd}`));
  } catch {
    return false;
  }
}).length;

describe('the userfaultfd page server, against real userfaultfd', { concurrency: false }, () => {
  let dir = '';
  let memory = '';
  let server: PageServer | undefined;
  let n = 0;
  const sock = () => join(dir, `c${++n}.sock`);
  /** 24 MiB below the gap and 8 MiB above it, as x86 splits guest memory. */
  const REGIONS = [24 * MiB, 8 * MiB];

  before(async () => {
    if (uffdUnavailable()) return;
    dir = mkdtempSync(join(tmpdir(), 'fcvm-uffd-'));
    memory = join(dir, 'memory');
    writeFileSync(memory, randomBytes(32 * MiB));
    server = await PageServer.start({ memoryPath: memory, workers: 2 });
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a VMM gets every page of both regions from the memory file, from four threads', async (t) => {
    if (!skipUnlessUffd(t)) return;
    const s = sock();
    await server!.listen('verify', s);
    const attached = next(server!, 'attached', 'verify');
    const gone = next(server!, 'gone', 'verify');
    const r = await harness({ socket: s, memoryPath: memory, regions: REGIONS, mode: 'verify', threads: 4 }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.report!.pages, (32 * MiB) / 4096);
    assert.equal(r.report!.mismatches, 0);
    const a = await attached;
    assert.equal(a.regions, 2);
    assert.equal(a.bytes, 32 * MiB);
    const g = await gone;
    assert.equal(g.why, 'its VMM exited');
    assert.equal(g.stats.faults + g.stats.around + g.stats.prefetched, r.report!.pages, 'each page was placed once');
    assert.ok(g.stats.around > g.stats.faults, 'most pages came in around a fault (64 KiB windows)');
    assert.equal(existsSync(s), false, 'the socket is removed once the VMM connected');
  });

  test('with fault-around off, every page is a fault of its own, and still the right one', async (t) => {
    if (!skipUnlessUffd(t)) return;
    const own = await PageServer.start({ memoryPath: memory, workers: 1, faultAroundKiB: 0 });
    try {
      const s = sock();
      await own.listen('single', s);
      const gone = next(own, 'gone', 'single');
      const r = await harness({ socket: s, memoryPath: memory, regions: REGIONS, mode: 'verify', threads: 2, pagesPerRegion: 1024 }).done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.report!.mismatches, 0);
      const stats = (await gone).stats;
      assert.equal(stats.around, 0);
      assert.equal(stats.faults, r.report!.pages);
    } finally {
      await own.stop();
    }
  });

  test('the next VMM gets the first one\'s working set prefetched, and still the right pages', async (t) => {
    if (!skipUnlessUffd(t)) return;
    const s = sock();
    await server!.listen('prefetched', s);
    const gone = next(server!, 'gone', 'prefetched');
    const r = await harness({ socket: s, memoryPath: memory, regions: REGIONS, mode: 'verify', threads: 2 }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.report!.mismatches, 0);
    assert.ok((await gone).stats.prefetched > 0, 'some pages came from the prefetcher');
  });

  test('Firecracker 1.10\'s message (page_size_kib only) is understood', async (t) => {
    if (!skipUnlessUffd(t)) return;
    const s = sock();
    await server!.listen('legacy', s);
    const r = await harness({ socket: s, memoryPath: memory, regions: REGIONS, mode: 'legacy', threads: 2, pagesPerRegion: 512 }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.report!.mismatches, 0);
  });

  test('MADV_DONTNEED sends REMOVE, and the removed pages come back as zeros, never as their neighbours\' file pages', async (t) => {
    if (!skipUnlessUffd(t)) return;
    const s = sock();
    await server!.listen('remove', s);
    const gone = next(server!, 'gone', 'remove');
    const r = await harness({ socket: s, memoryPath: memory, regions: REGIONS, mode: 'remove', threads: 2, pagesPerRegion: 256 }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.report!.notZeroed, 0, 'every removed page reads as zeros');
    assert.equal(r.report!.mismatches, 0, 'pages not removed keep the file\'s contents');
    const stats = (await gone).stats;
    assert.ok(stats.removes >= 2);
    assert.equal(stats.zeroPages, 64 + 9, 'each removed page read back was zero-filled once');
  });

  for (const [mode, why] of [
    ['bad-json', /not JSON/],
    ['outside-file', /ends past the memory file/],
    ['fault-outside', /outside every region/],
    ['no-remove', /lacks UFFD_FEATURE_EVENT_REMOVE/],
    ['fork-events', /EVENT_FORK/],
  ] as const) {
    test(`${mode}: the VMM is refused and killed, and the server goes on`, async (t) => {
      if (!skipUnlessUffd(t)) return;
      const s = sock();
      await server!.listen(mode, s);
      const refused = next(server!, 'refused', mode);
      const r = await harness({ socket: s, memoryPath: memory, regions: REGIONS, mode, threads: 1, pagesPerRegion: 64 }).done;
      const m = await refused;
      assert.match(m.why, why);
      assert.equal(m.killed, true);
      assert.equal(r.signal, 'SIGKILL', 'the VMM was killed, not left hanging on a fault no one will answer');
    });
  }

  test('ten VMMs at once each get their own correct pages', async (t) => {
    if (!skipUnlessUffd(t)) return;
    const runs: Run[] = [];
    for (let i = 0; i < 10; i++) {
      const s = sock();
      await server!.listen(`many-${i}`, s);
      runs.push(harness({ socket: s, memoryPath: memory, regions: REGIONS, mode: 'verify', threads: 2, pagesPerRegion: 1024 }));
    }
    for (const r of await Promise.all(runs.map((x) => x.done))) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.report!.mismatches, 0);
      assert.equal(r.report!.pages, 2048);
    }
  });

  test('a VMM killed in the middle of its faults is cleaned up, and others are not held up', async (t) => {
    if (!skipUnlessUffd(t)) return;
    // The previous test's clients are let go first (their VMMs exited a moment ago).
    for (let i = 0; i < 100 && server!.clients > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const fdsBefore = clientFds();
    const s = sock();
    await server!.listen('killed', s);
    const attached = next(server!, 'attached', 'killed');
    const gone = next(server!, 'gone', 'killed');
    const run = harness({ socket: s, memoryPath: memory, regions: REGIONS, mode: 'touch', threads: 4 });
    await attached;
    assert.equal(clientFds(), fdsBefore + 2, 'its uffd and pidfd are held while it runs');
    await new Promise((r) => setTimeout(r, 20));
    run.child.kill('SIGKILL');
    assert.equal((await run.done).signal, 'SIGKILL');
    assert.equal((await gone).why, 'its VMM exited');
    assert.equal(server!.clients, 0);
    assert.equal(clientFds(), fdsBefore, 'its uffd and pidfd are closed');
    // Another VMM right after is served in full.
    const s2 = sock();
    await server!.listen('after-kill', s2);
    const r = await harness({ socket: s2, memoryPath: memory, regions: REGIONS, mode: 'verify', threads: 2, pagesPerRegion: 256 }).done;
    assert.equal(r.report?.mismatches, 0, r.stderr);
  });

  test('a server that stops ends the VMMs it serves instead of leaving them hanging', async (t) => {
    if (!skipUnlessUffd(t)) return;
    const own = await PageServer.start({ memoryPath: memory, workers: 1 });
    const s = sock();
    await own.listen('orphan', s);
    const attached = next(own, 'attached', 'orphan');
    const gone = next(own, 'gone', 'orphan');
    const run = harness({ socket: s, memoryPath: memory, regions: REGIONS, mode: 'touch', threads: 2 });
    await attached;
    await own.stop();
    assert.match((await gone).why, /its VMM was killed/);
    assert.equal((await run.done).signal, 'SIGKILL');
  });

  test('a client dropped before its VMM connects leaves no socket behind', async (t) => {
    if (!skipUnlessUffd(t)) return;
    const s = sock();
    await server!.listen('dropped', s);
    const gone = next(server!, 'gone', 'dropped');
    server!.drop('dropped');
    assert.equal((await gone).why, 'dropped');
    assert.equal(existsSync(s), false);
  });
});
