import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeConsole } from './console.js';

test('the tail is led by a kernel panic that scrolled out of it', () => {
  const log = ['boot', '[ 0.8] Kernel panic - not syncing: No working init found', 'a', 'b', 'c'].join('\n');
  assert.equal(summarizeConsole(log, 2), '[ 0.8] Kernel panic - not syncing: No working init found | ... | b | c');
});

test('escape codes and blank lines are dropped; an empty log has no tail', () => {
  assert.equal(summarizeConsole('\x1b[0mone\r\n\n two \n', 5), 'one | two');
  assert.equal(summarizeConsole('', 5), undefined);
});

test('a flooded console log is cut to its ends, and its tail still read', async (t) => {
  const { mkdtempSync, writeFileSync, statSync, readFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { boundConsoleLog, consoleTail } = await import('./console.js');
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-console-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'console.log');
  writeFileSync(log, 'fcvm-init: first line\n' + 'x'.repeat(100) + '\n'.repeat(1) + 'flood\n'.repeat(500_000) + 'the last line\n');
  const stop = boundConsoleLog(log, 1 << 20, 20);
  // Polled, not a fixed wait: on a loaded host the first 20 ms tick may come late.
  for (let i = 0; i < 250 && statSync(log).size >= 200 * 1024; i++) await new Promise((r) => setTimeout(r, 20));
  stop();
  assert.ok(statSync(log).size < 200 * 1024, `size ${statSync(log).size}`);
  assert.match(readFileSync(log, 'utf8'), /bytes of console output cut here/);
  assert.match((await consoleTail(log))!, /fcvm-init: first line .* the last line$/);
});
