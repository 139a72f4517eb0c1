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
