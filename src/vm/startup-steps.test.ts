import { test } from 'node:test';
import assert from 'node:assert/strict';
import { __setDecisionForTest, fallible, StartupRestoreError, startupSteps } from './startup-steps.js';
import type { Ctx } from './run-context.js';
import type { Step } from '../util/steps.js';

/** The names a run goes through when its startup step decides `kind` (set the way `decide` does). */
function path(mode: 'run' | 'prepare', kind: 'hit' | 'miss' | 'off'): string[] {
  const steps = startupSteps(mode);
  const i = steps.findIndex((s) => s.name === 'startup');
  const c = {
    opts: { noSnapshot: kind === 'off', vcpus: 2, memoryMiB: 512, network: 'none', volumes: [] },
    image: kind === 'off' ? { kind: 'pull', ref: 'x' } : { kind: 'archive', id: 'a'.repeat(64) },
    driver: { name: 'qemu', capabilities: { snapshot: true } },
  } as unknown as Ctx;
  const decide = steps[i]! as Step<Ctx> & { next: NonNullable<Step<Ctx>['next']> };
  return [...steps.slice(0, i + 1).map((s) => s.name), ...(decide.next(withDecision(c, kind)) ?? steps.slice(i + 1)).map((s) => s.name)];
}

function withDecision(c: Ctx, kind: 'hit' | 'miss' | 'off'): Ctx {
  __setDecisionForTest(c, kind === 'off' ? { kind, why: 'test' } : { kind, key: 'k', tag: 'startup-k' });
  return c;
}

test('a hit restores instead of booting, under the cold steps\' names where they stand for the same', () => {
  assert.deepEqual(path('run', 'hit'), ['preflight', 'reap', 'artifacts', 'driver', 'image', 'nested-volumes', 'accel', 'startup', 'claim-name', 'log', 'network', 'network-connect', 'disks', 'jail', 'restore', 'agent', 'volumes', 'network-ready', 'restored', 'control-socket']);
});

test('a miss boots cold and saves the snapshot once the guest is configured, before the container runs', () => {
  assert.deepEqual(path('run', 'miss'), ['preflight', 'reap', 'artifacts', 'driver', 'image', 'nested-volumes', 'accel', 'startup', 'claim-name', 'log', 'network', 'network-connect', 'disks', 'jail', 'boot', 'agent', 'volumes', 'network-ready', 'configure', 'startup-snapshot', 'control-socket']);
  assert.deepEqual(path('run', 'off'), ['preflight', 'reap', 'artifacts', 'driver', 'image', 'nested-volumes', 'accel', 'startup', 'claim-name', 'log', 'network', 'network-connect', 'disks', 'jail', 'boot', 'agent', 'volumes', 'network-ready', 'configure', 'control-socket']);
});

test('prepare stops once the snapshot is saved, and does nothing more on a hit', () => {
  assert.deepEqual(path('prepare', 'miss').slice(-4), ['volumes', 'network-ready', 'configure', 'startup-snapshot']);
  assert.deepEqual(path('prepare', 'hit'), ['preflight', 'reap', 'artifacts', 'driver', 'image', 'nested-volumes', 'accel', 'startup']);
  assert.throws(() => path('prepare', 'off'), /cannot prepare a startup snapshot/);
});

test('a failed restore step lets the run boot cold, unless its VMM was killed from outside (SIGKILL) or fcvm was interrupted', async () => {
  const failing = fallible({ name: 'restore', run: () => Promise.reject(new Error('the VM stopped unexpectedly')) });
  const go = (c: Ctx) => Promise.resolve().then(() => failing.run(c));
  const ctx = (exit: object | undefined) => ({ clone: { tag: 'startup-k' }, vm: { exited: exit ? Promise.resolve(exit) : new Promise(() => {}) } }) as unknown as Ctx;
  await assert.rejects(go(ctx({ code: 1 })), StartupRestoreError);
  await assert.rejects(go(ctx(undefined)), StartupRestoreError);
  await assert.rejects(go({ clone: { tag: 'startup-k' } } as unknown as Ctx), StartupRestoreError);
  await assert.rejects(go(ctx({ signal: 'SIGSEGV' })), StartupRestoreError);
  await assert.rejects(go(ctx({ signal: 'SIGKILL' })), (e: Error) => !(e instanceof StartupRestoreError) && /stopped unexpectedly/.test(e.message));
});
