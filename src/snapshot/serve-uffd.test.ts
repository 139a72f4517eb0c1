import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { isFcvmError } from '../errors/fcvm-error.js';
import { layoutFor } from '../setup/layout.js';
import { createLogger } from '../util/log.js';
import { sleep } from '../util/proc.js';
import { serveSnapshot } from './serve.js';
import { attachToServer } from './serve-client.js';
import { loadServe } from './serve-state.js';
import { commitSnapshot, sha256File, SNAPSHOT_SCHEMA, type SnapshotMeta } from './store.js';
import type { HarnessReport } from './uffd/harness.js';

const MiB = 2 ** 20;
const HARNESS = fileURLToPath(new URL('./uffd/harness.js', import.meta.url));

/** A Firecracker snapshot's files, made by hand: what `fcvm snapshot serve` needs to serve it. */
async function fakeFirecrackerSnapshot(base: string, tag: string): Promise<void> {
  const layout = layoutFor(base);
  const partial = join(layout.snapshots, `.${tag}.partial`);
  mkdirSync(partial, { recursive: true });
  writeFileSync(join(partial, 'state'), randomBytes(4096));
  writeFileSync(join(partial, 'memory'), randomBytes(16 * MiB));
  writeFileSync(join(partial, 'root.raw'), randomBytes(4096));
  const files: SnapshotMeta['files'] = {};
  for (const f of ['state', 'memory', 'root.raw']) files[f] = await sha256File(join(partial, f));
  await commitSnapshot(layout, partial, {
    schema: SNAPSHOT_SCHEMA, tag, createdAt: new Date().toISOString(), pausedMs: 1, source: { name: 'src', id: 'x' },
    plan: { image: 'localhost/bb', env: {}, privileged: false, network: { mode: 'none', publish: [] } },
    machine: {
      hypervisor: 'firecracker', accel: 'kvm', kernel: '/k/vmlinux', initrd: '/k/initrd', cmdline: 'console=ttyS0', vcpus: 1, memoryMiB: 16,
      rootfs: '/r/rootfs.ext4', mac: '52:54:00:00:00:01', hasImageDisk: false, rootDisk: { file: 'root.raw', format: 'raw' },
    },
    files,
  });
}

test('snapshot serve of a Firecracker snapshot serves an attached clone\'s memory by userfaultfd', async (t) => {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: needs root for userfaultfd ***\n`);
    return t.skip('needs root');
  }
  const base = mkdtempSync(join(tmpdir(), 'fcvm-serve-uffd-'));
  const log = createLogger('error');
  const out = new PassThrough();
  let said = '';
  out.on('data', (d) => (said += d));
  const stop = new AbortController();
  try {
    await fakeFirecrackerSnapshot(base, 'fc-warm');
    const layout = layoutFor(base);
    const serving = serveSnapshot(layout, log, 'fc-warm', stop.signal, out);
    for (let i = 0; i < 200 && !(await loadServe(layout, process.pid)); i++) await sleep(25);
    const link = await attachToServer(layout, process.pid, 'clone1', log);
    assert.equal(link.uffd, true, 'a Firecracker snapshot is served by userfaultfd');
    const socket = join(base, 'clone1-uffd.sock');
    await link.serveUffd(socket, 0);
    assert.ok(existsSync(socket));
    await assert.rejects(link.serveUffd(join(base, 'again.sock'), 0), (e) => isFcvmError(e) && /once per clone/.test(e.message));
    const report = await new Promise<HarnessReport>((resolve, reject) => execFile(process.execPath, [HARNESS, JSON.stringify({
      socket, memoryPath: join(layout.snapshots, 'fc-warm', 'memory'), regions: [12 * MiB, 4 * MiB], mode: 'verify', threads: 2,
    })], (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(JSON.parse(stdout) as HarnessReport))));
    assert.equal(report.mismatches, 0);
    assert.equal(report.pages, (16 * MiB) / 4096);
    link.close();
    for (let i = 0; i < 100 && !/page server: clone clone1: its VMM exited/.test(said); i++) await sleep(25);
    assert.match(said, /page server: clone clone1's VMM \(pid \d+\) connected: 2 regions, 16 MiB/);
    assert.match(said, /page server: clone clone1: its VMM exited after \d+ faults/);
    // The clone is this test process: the server must have seen it detach before it is
    // told to stop, or it would stop its clones, i.e. SIGTERM this very process.
    for (let i = 0; i < 400 && !/clone "clone1" \(pid \d+\) detached/.test(said); i++) await sleep(25);
    assert.match(said, /clone "clone1" \(pid \d+\) detached/);
    stop.abort('SIGTERM');
    assert.equal(await serving, 0);
    assert.equal(existsSync(join(layout.snapshots, 'fc-warm', 'working-set')), true, 'the first clone\'s working set was kept');
  } finally {
    stop.abort('SIGTERM');
    rmSync(base, { recursive: true, force: true });
  }
});
