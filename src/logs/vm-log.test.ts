import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownerTag } from '../util/owner-tag.js';
import { KEEP_ENDED_LOG_MS, logPath, logsOf, parseLogName, pruneEndedLogs, RotatingLog, rotatedPath } from './vm-log.js';

test('the log rotates when full and never holds more than two files of its limit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-log-'));
  try {
    const path = join(dir, 'vm.log');
    writeFileSync(rotatedPath(path), 'an older file');
    const log = new RotatingLog(path, 100);
    assert.equal(existsSync(rotatedPath(path)), false, 'a new log starts fresh');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    for (let i = 0; i < 50; i++) log.write(`line ${String(i).padStart(2, '0')}\n`);
    log.close();
    const now = readFileSync(path, 'utf8');
    const before = readFileSync(rotatedPath(path), 'utf8');
    assert.ok(now.length <= 100 && before.length <= 100, `${now.length} ${before.length}`);
    const lines = (before + now).split('\n').filter(Boolean).map((l) => Number(l.replace(/^\S+Z /, '').slice(5)));
    assert.equal(lines.at(-1), 49);
    assert.deepEqual(lines, lines.map((_, i) => 50 - lines.length + i), 'the newest lines, in order, none lost between the files');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('log names carry the VM name and id', () => {
  assert.deepEqual(parseLogName('web.v1.ab12cd-123-456.log'), { name: 'web.v1', id: 'ab12cd-123-456' });
  assert.equal(parseLogName('web.log'), undefined);
  assert.equal(logPath('/l', 'web', 'ab-1-2'), '/l/web.ab-1-2.log');
});

test('ended VMs\' logs go after a day, or when a VM of the same name starts; live ones stay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-log-'));
  try {
    const old = (Date.now() - KEEP_ENDED_LOG_MS - 60_000) / 1000;
    const dead = 'ab12cd-4194304-7';
    const live = `ab12cd-${ownerTag()}`;
    for (const f of [`gone.${dead}.log`, `gone.${dead}.log.1`, `live.${live}.log`, `recent.${dead}.log`, `again.${dead}.log`]) writeFileSync(join(dir, f), 'x');
    utimesSync(join(dir, `gone.${dead}.log`), old, old);
    utimesSync(join(dir, `live.${live}.log`), old, old);
    assert.deepEqual(await pruneEndedLogs(dir), [`gone.${dead}.log`]);
    assert.equal(existsSync(join(dir, `gone.${dead}.log.1`)), false);
    assert.deepEqual((await logsOf(dir, 'again')).map((l) => l.id), [dead]);
    assert.deepEqual(await pruneEndedLogs(dir, { name: 'again' }), [`again.${dead}.log`]);
    assert.ok(existsSync(join(dir, `live.${live}.log`)) && existsSync(join(dir, `recent.${dead}.log`)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
