import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stressOptionsFromFlags } from './stress-options.js';

const base = { clones: '50', batch: '10', healthTimeout: '180' };

test('stress flags become options', () => {
  assert.deepEqual(stressOptionsFromFlags({ ...base, snapshot: 'web', publishBase: '20000', json: 'a.json' }), {
    source: { kind: 'snapshot', tag: 'web' }, clones: 50, batch: 10, publishBase: 20000, json: 'a.json', plot: undefined, healthTimeoutSeconds: 180, sourceArgs: [],
  });
  assert.deepEqual(stressOptionsFromFlags({ ...base, image: 'localhost/bb', cpu: '1', mem: '256' }).sourceArgs, ['--cpu', '1', '--mem', '256']);
  assert.equal(stressOptionsFromFlags({ ...base, image: 'localhost/bb', batch: '99' }).batch, 50);
});

test('bad stress flags are refused with what to do', () => {
  assert.throws(() => stressOptionsFromFlags({ ...base }), /give exactly one of --snapshot and --image/);
  assert.throws(() => stressOptionsFromFlags({ ...base, snapshot: 'a', image: 'b' }), /exactly one/);
  assert.throws(() => stressOptionsFromFlags({ ...base, snapshot: 'a', clones: '0' }), /invalid --clones "0"/);
  assert.throws(() => stressOptionsFromFlags({ ...base, snapshot: 'a', batch: 'x' }), /invalid --batch "x"/);
  assert.throws(() => stressOptionsFromFlags({ ...base, snapshot: 'a', publishBase: '65530' }), /ports up to 65579/);
  assert.throws(() => stressOptionsFromFlags({ ...base, image: 'Bad/Ref' }), /lowercase/);
  assert.throws(() => stressOptionsFromFlags({ ...base, snapshot: 'a', cpu: '1' }), /--cpu and --mem size the VM taken from --image/);
});
