import { test } from 'node:test';
import assert from 'node:assert/strict';
import { podmanRunArgs, rewriteHosts } from './podman-args.js';

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
  assert.ok(args.includes('256m'));
  assert.ok(!args.includes('--cpus'), 'no CPU quota: it would live-patch the guest kernel at each start');
});

test('a command override follows the image; privileged is passed', () => {
  const args = podmanRunArgs({ ...plan, env: {}, privileged: true, command: ['sh', '-c', 'exit 7'] }, 'img');
  assert.deepEqual(args.slice(-4), ['img', 'sh', '-c', 'exit 7']);
  assert.ok(args.includes('--privileged'));
});

test('run flags become single words, so a value can never pass for a flag', () => {
  const args = podmanRunArgs({
    ...plan, env: {}, tty: true, stdinChannel: 5, init: true, workdir: '/data', user: '1000:1000',
    entrypoint: '--privileged', hostname: 'h1', labels: { team: 'a', 'x.y': '' },
  }, 'img');
  for (const a of ['--tty', '--interactive', '--init', '--workdir=/data', '--user=1000:1000', '--entrypoint=--privileged', '--hostname=h1', '--label=team=a', '--label=x.y=']) {
    assert.ok(args.includes(a), a);
  }
  assert.ok(!args.includes('--privileged'));
  assert.equal(args.at(-1), 'img');
});

test('an empty --entrypoint is passed on: it clears the image\'s', () => {
  assert.ok(podmanRunArgs({ ...plan, entrypoint: '' }, 'img').includes('--entrypoint='));
  assert.ok(!podmanRunArgs(plan, 'img').some((a) => a.startsWith('--entrypoint')));
});

test('podman options checked on the host go in as they are, before the image', () => {
  const args = podmanRunArgs({ ...plan, env: {}, podmanOptions: ['--read-only', '--cap-drop=ALL', '--tmpfs=/scratch:size=8m'] }, 'img');
  assert.deepEqual(args.slice(-4), ['--read-only', '--cap-drop=ALL', '--tmpfs=/scratch:size=8m', 'img']);
});

test('detached, the container is started by podman run --detach and given the caller\'s stdio', () => {
  const args = podmanRunArgs(plan, 'img', { detached: true });
  assert.ok(args.includes('--detach') && args.includes('--log-driver=passthrough'));
  assert.ok(args.indexOf('--detach') < args.indexOf('img'));
  assert.ok(!podmanRunArgs(plan, 'img').includes('--detach'));
});

test('host.containers.internal is the VM\'s gateway, not the guest podman sees as its host', () => {
  const args = podmanRunArgs(plan, 'img', { hosts: { gateway: '172.30.0.1' } });
  assert.ok(args.includes('--add-host=host.containers.internal:172.30.0.1'));
  assert.ok(args.indexOf('--add-host=host.containers.internal:172.30.0.1') < args.indexOf('img'));
  assert.ok(!podmanRunArgs(plan, 'img').some((a) => a.startsWith('--add-host')));
});

test('the container\'s own host name resolves to the guest\'s address', () => {
  const args = podmanRunArgs(plan, 'img', { hosts: { gateway: '10.0.2.2', self: { name: 'web', address: '10.0.2.15' } } });
  assert.ok(args.includes('--add-host=web:10.0.2.15'));
  assert.ok(args.indexOf('--add-host=web:10.0.2.15') < args.indexOf('img'));
});

test('--no-hosts: none of fcvm\'s /etc/hosts names either (podman refuses --add-host beside it)', () => {
  const args = podmanRunArgs({ ...plan, podmanOptions: ['--no-hosts'] }, 'img', { hosts: { gateway: '10.0.2.2', self: { name: 'web', address: '10.0.2.15' } } });
  assert.ok(args.includes('--no-hosts'));
  assert.ok(!args.some((a) => a.startsWith('--add-host')), args.join(' '));
  assert.ok(podmanRunArgs({ ...plan, podmanOptions: ['--no-hosts=false'] }, 'img', { hosts: { gateway: '10.0.2.2' } }).includes('--add-host=host.containers.internal:10.0.2.2'));
});

test('rewriteHosts changes only the entries it is asked to, keeping the rest byte for byte', () => {
  const text = '127.0.0.1\tlocalhost\n# a comment\n\n172.30.0.1\thost.containers.internal\n172.30.0.2  src other\n';
  const renamed = rewriteHosts(text, (address, names) => ({ address, names: names.map((n) => (n === 'src' ? 'c1' : n)) }));
  assert.equal(renamed, '127.0.0.1\tlocalhost\n# a comment\n\n172.30.0.1\thost.containers.internal\n172.30.0.2\tc1 other\n');
  const moved = rewriteHosts(text, (address, names) => ({ address: address === '172.30.0.2' ? '10.0.2.15' : address, names }));
  assert.equal(moved.split('\n')[4], '10.0.2.15\tsrc other');
  assert.equal(rewriteHosts(text, (address, names) => ({ address, names })), text);
});
