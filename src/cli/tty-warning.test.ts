import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notATerminalWarning } from './tty-warning.js';

test('-i with -t on a stdin that is no terminal gets podman\'s warning; anything else none', () => {
  assert.match(notATerminalWarning(true, true, false) ?? '', /^fcvm: warning: the input device is not a TTY; .*give -i alone\)\n$/);
  assert.equal(notATerminalWarning(true, true, true), undefined);
  assert.equal(notATerminalWarning(true, false, false), undefined);
  assert.equal(notATerminalWarning(false, true, false), undefined);
});
