import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { readFileSync, statSync } from 'node:fs';
import { LOG_MAX_BYTES } from '../../src/logs/vm-log.js';
import { assertNoLeftovers, fcvm, filesOutsideRunDirs, layout, memoryKiB, spawnFcvm, stateFile, vmsAvailable, waitFor } from '../helpers.js';

/**
 * A hostile guest: stage 2 starts src/agent/hostile instead of the agent
 * (fcvm.agent=hostile:CASE), and it does one thing a compromised guest could. The
 * supervisor must end the VM with one line that says the guest broke the protocol,
 * promptly, leaving nothing behind and writing nothing outside its run directory.
 */
const hostile = (c: string) => ({ FCVM_KERNEL_ARGS: `fcvm.agent=hostile:${c}` });
const BOOT_TIMEOUT = 30;

const violations: Array<[string, RegExp]> = [
  ['garbage', /bad magic 0x4745/],
  ['oversized', /frame length 4294967295 exceeds 1048576/],
  ['channels', /the peer used more than 64 channels that this side did not open/],
  ['window', /the peer sent 65536 bytes past its window on channel 2/],
  ['bad-json', /message is not valid JSON/],
  ['huge-json', /message is not valid JSON|invalid message/],
  ['stray-reply', /an answer to request 424242, which was never made/],
  ['sync', /bad magic 0x00fc/],
  ['no-read', /the peer stopped reading \(\d+ bytes not taken\)/],
  ['truncated', /it sent \d+ bytes of a frame and never the rest/],
];

for (const [name, re] of violations) {
  test(`a guest that sends ${name} is stopped with a one-line protocol error`, async (t) => {
    if (!vmsAvailable(t)) return;
    const before = filesOutsideRunDirs();
    const t0 = Date.now();
    const r = await fcvm(['podman', 'run', '--network', 'none', '--boot-timeout', String(BOOT_TIMEOUT), 'localhost/bb', '--', 'true'], { env: hostile(name) });
    const lines = r.stderr.trim().split('\n');
    assert.equal(r.exitCode, 125, r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^fcvm: the guest broke the host-guest protocol \(/);
    assert.match(lines[0]!, re);
    assert.ok(Date.now() - t0 < (BOOT_TIMEOUT + 30) * 1000, `took ${Date.now() - t0} ms`);
    assertNoLeftovers();
    assert.deepEqual(filesOutsideRunDirs(), before, 'nothing written outside the run directory');
  });
}

test('a guest that answers its hello and then nothing ends in a timeout, not a hang', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await fcvm(['podman', 'run', '--network', 'none', '--boot-timeout', '20', 'localhost/bb', '--', 'true'], { env: hostile('silent') });
  assert.equal(r.exitCode, 125, r.stderr);
  assert.match(r.stderr, /^fcvm: the container's start did not happen within 20s; guest console ends with: .*case silent done/);
  assertNoLeftovers();
});

test('a guest that floods events, requests and output within the protocol cannot grow the supervisor', async (t) => {
  if (!vmsAvailable(t)) return;
  const before = filesOutsideRunDirs();
  const p = spawnFcvm(['podman', 'run', '--name', 'it-flood', '--network', 'none', '--boot-timeout', String(BOOT_TIMEOUT), 'localhost/bb', '--', 'true'], hostile('flood'));
  let output = '';
  p.all?.on('data', (d: Buffer) => (output += d.toString('latin1').slice(-4096)));
  try {
    await waitFor(() => /hostile: flooded stdout/.test(output), 180_000, 'the stdout flood to go through');
    const state = JSON.parse(readFileSync(stateFile('it-flood'), 'utf8')) as { runDir: string; transitions: unknown[] };
    assert.ok(state.transitions.length <= 64, `${state.transitions.length} transitions recorded`);
    const base = memoryKiB(p.pid!)!;
    // An exec client that connects and never reads: the guest floods its channel.
    const sock = connect(join(state.runDir, 'control.sock'));
    sock.pause();
    let peak = base.rss;
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 250));
      peak = Math.max(peak, memoryKiB(p.pid!)?.rss ?? 0);
    }
    sock.destroy();
    process.stderr.write(`flood: supervisor RSS ${Math.round(base.rss / 1024)} MiB before the exec flood, peak ${Math.round(peak / 1024)} MiB during it\n`);
    assert.ok(peak - base.rss < 48 * 1024, `supervisor RSS grew from ${base.rss} to ${peak} KiB`);
    const r = await p;
    assert.equal(r.exitCode, 42, String(r.all).slice(-2000));
    assert.match(output, /hostile: flooded the exec channel/);
  } finally {
    p.kill('SIGKILL');
    await p;
    await fcvm(['ls']);
  }
  assertNoLeftovers();
  // Outside its run directory, only its kept log (ended VMs are kept, as podman's), bounded as any log.
  const after = filesOutsideRunDirs();
  const kept = after.filter((f) => f.startsWith(join(layout.logs, 'it-flood.')));
  for (const f of kept) assert.ok(statSync(f).size <= LOG_MAX_BYTES, `${f}: ${statSync(f).size} bytes`);
  // (A kept it-flood of an earlier run went when this one took the name.)
  assert.deepEqual(after.filter((f) => !kept.includes(f)), before.filter((f) => !f.startsWith(join(layout.logs, 'it-flood.'))), 'nothing else written outside the run directory');
  await fcvm(['rm', 'it-flood']);
});
