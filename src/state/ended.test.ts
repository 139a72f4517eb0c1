import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownerTag } from '../util/owner-tag.js';
import { logPath, pruneEndedLogs, recordPath, removeLog } from '../logs/vm-log.js';
import { EXIT_MARK } from '../logs/read-log.js';
import { endedVms, writeEndedRecord } from './ended.js';
import { STATE_SCHEMA, type VmState } from './vm-state.js';

const DEAD = 'ab12cd-4194304-7';

function state(dir: string, name: string, id: string, over: Partial<VmState> = {}): VmState {
  return {
    schema: STATE_SCHEMA, name, id, pid: 4194304, pidStartTime: 7, status: 'healthy', image: 'localhost/bb', hypervisor: 'qemu',
    vcpus: 2, memoryMiB: 512, runDir: `/run/x/${id}`, createdAt: '2026-12-07T10:00:00.000Z', netIndex: 1,
    network: { mode: 'none', loopback: '127.0.1.1', publish: [] },
    log: { path: logPath(dir, name, id), keep: true },
    transitions: [{ status: 'starting', at: '2026-12-07T10:00:00.000Z' }, { status: 'healthy', at: '2026-12-07T10:00:05.000Z' }],
    ...over,
  };
}

test('an ended VM\'s record keeps its last state and exit code, and goes with its log', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-ended-'));
  try {
    const done = state(dir, 'done', DEAD, { status: 'stopped', exitCode: 3 });
    writeFileSync(done.log!.path, 'x');
    await writeEndedRecord(done);
    assert.equal(existsSync(recordPath(done.log!.path)), true);
    const [back] = await endedVms(dir, 'done');
    assert.equal(back?.exitCode, 3);
    assert.equal(back?.status, 'stopped');
    assert.deepEqual(back, done);
    await removeLog(done.log!.path);
    assert.deepEqual(readdirSync(dir), [], 'rm takes the record with the log');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a VM whose supervisor was killed is kept as ended, with the exit its log recorded or the fallback', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-ended-'));
  try {
    const a = state(dir, 'a', DEAD);
    writeFileSync(a.log!.path, `2026-12-07T10:00:06.000000000Z ${EXIT_MARK}7\n2026-12-07T10:00:06.000000000Z fcvm: bye\n`);
    await writeEndedRecord(a, 'its supervisor was killed', 137);
    const b = state(dir, 'b', DEAD);
    await writeEndedRecord(b, 'its supervisor was killed', 137);
    const [ra] = await endedVms(dir, 'a');
    const [rb] = await endedVms(dir, 'b');
    assert.equal(ra?.exitCode, 7);
    assert.equal(rb?.exitCode, 137);
    assert.equal(rb?.status, 'stopped');
    assert.equal(rb?.transitions.at(-1)?.detail, 'its supervisor was killed');
    // Never for a run with --rm.
    await writeEndedRecord(state(dir, 'c', DEAD, { log: { path: logPath(dir, 'c', DEAD), keep: false } }));
    assert.deepEqual(await endedVms(dir, 'c'), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('only records of dead owners, of valid state, count; a new VM of the name prunes them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-ended-'));
  try {
    const live = `ab12cd-${ownerTag()}`;
    await writeEndedRecord(state(dir, 'x', live, { status: 'stopped', exitCode: 0 }));
    writeFileSync(join(dir, `junk.${DEAD}.json`), '{"not":"a state"}');
    writeFileSync(join(dir, `bad.${DEAD}.json`), 'not json');
    await writeEndedRecord(state(dir, 'old', DEAD, { status: 'stopped', exitCode: 1, createdAt: '2026-12-01T00:00:00.000Z' }));
    await writeEndedRecord(state(dir, 'old', 'ab12cd-4194304-8', { id: 'ab12cd-4194304-8', status: 'stopped', exitCode: 2 }));
    const all = await endedVms(dir);
    assert.deepEqual(all.map((s) => `${s.name}:${s.exitCode}`), ['old:2', 'old:1'], 'newest first, live and invalid ones left out');
    // A record without its log (removed by hand) is pruned with its name all the same.
    assert.deepEqual((await pruneEndedLogs(dir, { name: 'old' })).sort(), [`old.${DEAD}.json`, 'old.ab12cd-4194304-8.json']);
    assert.deepEqual(await endedVms(dir, 'old'), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
