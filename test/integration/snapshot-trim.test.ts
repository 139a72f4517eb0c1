/**
 * `snapshot create` trims the guest first (src/snapshot/trim.ts): its clean caches and
 * free pages leave the RAM file through the balloon's free page reporting, so the
 * snapshot keeps less memory. A clone reporting its own free pages must never punch
 * the snapshot's file, which its siblings map.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { assertNoLeftovers, fcvm, hypervisor, layout, spawnFcvm, vmsUnavailableReason, waitFor } from '../helpers.js';

const SRC = 'it-trim-src';
const FULL = 'it-trim-full';
const TRIMMED = 'it-trim';
const ORDER = '/sys/module/page_reporting/parameters/page_reporting_order';

const ls = async () => JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string }[];
const memoryFile = (tag: string) => join(layout.snapshots, tag, 'memory');
const onDisk = (tag: string) => statSync(memoryFile(tag)).blocks * 512;
async function sha(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

describe('snapshot create trims the guest\'s memory', { concurrency: false }, () => {
  let source: ResultPromise | undefined;
  let skip: string | undefined = vmsUnavailableReason();
  if (!skip && hypervisor !== 'qemu') skip = `the ${hypervisor} driver drops no reported pages (no balloon): only QEMU's is tested`;

  before(async () => {
    if (skip) return void process.stderr.write(`\n*** SKIPPED snapshot trim: ${skip} ***\n`);
    for (const t of [FULL, TRIMMED]) await fcvm(['snapshots', 'delete', t]);
    source = spawnFcvm(['podman', 'run', '--name', SRC, '--stop-timeout', '1', '--no-snapshot', 'localhost/bb', '--', 'sleep', 'infinity']);
    await waitFor(async () => (await ls()).some((v) => v.name === SRC && ['running', 'healthy'].includes(v.status)), 180_000, `${SRC} running`);
  });

  after(async () => {
    if (skip) return;
    source?.kill('SIGTERM');
    await source;
    for (const t of [FULL, TRIMMED]) await fcvm(['snapshots', 'delete', t]);
    assertNoLeftovers();
  });

  test('a trimmed snapshot keeps less RAM than --no-trim, the guest\'s reporting grain is back, and its clone runs', async (t) => {
    if (skip) return t.skip(skip);
    const order = (await fcvm(['exec', SRC, '--vm', '--', 'cat', ORDER])).stdout.trim();
    assert.match(order, /^\d+$/, 'the guest has free page reporting (virtio_balloon)');
    const full = await fcvm(['snapshot', 'create', SRC, '--tag', FULL, '--no-trim']);
    assert.equal(full.exitCode, 0, full.stderr);
    const trimmed = await fcvm(['snapshot', 'create', SRC, '--tag', TRIMMED]);
    assert.equal(trimmed.exitCode, 0, trimmed.stderr);
    const [a, b] = [onDisk(FULL), onDisk(TRIMMED)];
    // Measured: 188 against 131 MiB for this guest.
    assert.ok(b < a * 0.85, `trimmed ${Math.round(b / 2 ** 20)} MiB, not much below ${Math.round(a / 2 ** 20)} MiB without the trim`);
    assert.equal((await fcvm(['exec', SRC, '--vm', '--', 'cat', ORDER])).stdout.trim(), order, 'the reporting grain is the kernel\'s again');
    const clone = await fcvm(['snapshot', 'run', '--snapshot', TRIMMED, '--exec', 'echo clone-ok; cat /proc/sys/kernel/hostname']);
    assert.equal(clone.exitCode, 0, clone.stderr);
    assert.match(clone.stdout, /clone-ok/);
  });

  test('a clone whose guest reports every free page leaves its snapshot\'s RAM file as it was', async (t) => {
    if (skip) return t.skip(skip);
    // The untrimmed snapshot: its free pages hold data, which a punched hole would zero.
    // Without its jail, the clone maps the file itself (a jailed one maps a sealed copy).
    const before = await sha(memoryFile(FULL));
    const name = 'it-trim-clone';
    const c = spawnFcvm(['snapshot', 'run', '--snapshot', FULL, '--name', name, '--no-jail']);
    try {
      await waitFor(async () => (await ls()).some((v) => v.name === name && ['running', 'healthy'].includes(v.status)), 120_000, `${name} running`);
      // Frees its caches and reports every free page, then waits past two report passes.
      const e = await fcvm(['exec', name, '--vm', '--', 'sh', '-c', `echo 0 > ${ORDER}; sync; echo 3 > /proc/sys/vm/drop_caches; sleep 5; echo reported`]);
      assert.equal(e.exitCode, 0, e.stderr);
      assert.match(e.stdout, /reported/);
    } finally {
      c.kill('SIGTERM');
      await c;
    }
    assert.equal(await sha(memoryFile(FULL)), before);
  });
});
