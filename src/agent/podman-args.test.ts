import { test } from 'node:test';
import assert from 'node:assert/strict';
import { podmanRunArgs } from './podman-args.js';

const plan = {
  name: 'web1',
  image: { kind: 'pull' as const, ref: 'x' },
  env: { GREETING: 'hi there', WHO: 'a=b' },
  privileged: false,
  cpus: 2,
  memoryMiB: 256,
  stdoutChannel: 1,
  stderrChannel: 3,
};

test('env values pass through verbatim, one --env each, before the image', () => {
  const args = podmanRunArgs(plan, 'sha');
  assert.deepEqual(args.slice(-5), ['--env', 'GREETING=hi there', '--env', 'WHO=a=b', 'sha']);
  assert.ok(!args.includes('--privileged'));
  assert.ok(args.includes('--cpus') && args.includes('256m'));
});

test('a command override follows the image; privileged is passed', () => {
  const args = podmanRunArgs({ ...plan, env: {}, privileged: true, command: ['sh', '-c', 'exit 7'] }, 'img');
  assert.deepEqual(args.slice(-4), ['img', 'sh', '-c', 'exit 7']);
  assert.ok(args.includes('--privileged'));
});
