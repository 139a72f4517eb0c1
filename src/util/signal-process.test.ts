import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { processStartTime } from './proc.js';
import { signalProcess } from './signal-process.js';

test('a process is signalled only while it is the one that started at that time', async () => {
  const child = spawn('sleep', ['30']);
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_, sig) => r(sig)));
  const start = processStartTime(child.pid!)!;
  assert.equal(await signalProcess(child.pid!, start + 1, 'SIGTERM'), false, 'another start time: not this process');
  assert.equal(child.exitCode, null);
  assert.equal(await signalProcess(child.pid!, start, 'SIGTERM'), true);
  assert.equal(await exited, 'SIGTERM');
  assert.equal(await signalProcess(child.pid!, start, 'SIGTERM'), false, 'gone');
});
