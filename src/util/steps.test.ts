import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CleanupStack } from './cleanup-stack.js';
import { runBeside, runSteps, type Step } from './steps.js';
import { createLogger } from './log.js';

interface C {
  cleanup: CleanupStack;
  trace: string[];
  value?: number;
}

const log = createLogger('error', () => {});
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function steps(beside: (c: C) => Promise<void>, middle: (c: C) => Promise<void> = async () => {}): Step<C>[] {
  return runBeside([
    { name: 'a', run: (c) => void c.trace.push('a') },
    { name: 'slow', run: beside },
    { name: 'b', run: async (c) => (c.trace.push('b'), await middle(c)) },
    { name: 'use', run: (c) => void c.trace.push(`use ${c.value}`) },
  ], 'slow', 'use', 'slow-ready');
}

test('a step beside others runs while they do, and the step named "until" waits for it', async () => {
  const c: C = { cleanup: new CleanupStack(), trace: [] };
  await runSteps(steps(async (x) => {
    await wait(30);
    x.value = 7;
    x.trace.push('slow done');
  }), c, log);
  assert.deepEqual(c.trace, ['a', 'b', 'slow done', 'use 7']);
  assert.deepEqual(steps(async () => {}).map((s) => s.name), ['a', 'slow', 'b', 'slow-ready', 'use']);
});

test('its failure fails the run at the join', async () => {
  const c: C = { cleanup: new CleanupStack(), trace: [] };
  await assert.rejects(runSteps(steps(async () => { await wait(10); throw new Error('no veth'); }), c, log), /no veth/);
  assert.deepEqual(c.trace, ['a', 'b']);
});

test('its undos run once it settled, at its place, even when a step after it failed first', async () => {
  const c: C = { cleanup: new CleanupStack(), trace: [] };
  c.cleanup.push('undo a', () => void c.trace.push('undo a'));
  const run = runSteps(steps(async (x) => {
    x.cleanup.push('undo slow 1', () => void x.trace.push('undo slow 1'));
    await wait(40);
    x.cleanup.push('undo slow 2', () => void x.trace.push('undo slow 2'));
  }, async (x) => {
    x.cleanup.push('undo b', () => void x.trace.push('undo b'));
    throw new Error('b failed');
  }), c, log);
  await assert.rejects(run, /b failed/);
  // Nothing of the slow step's was registered on the run's stack: it has its own.
  await c.cleanup.run();
  assert.deepEqual(c.trace, ['a', 'b', 'undo b', 'undo slow 2', 'undo slow 1', 'undo a']);
});
