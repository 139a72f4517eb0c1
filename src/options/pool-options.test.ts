import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cloneNetwork, poolFromFlags, unpoolable } from './pool-options.js';
import { hostfwdAddCommand } from '../vmm/qemu/driver.js';
import { poolMemberSteps } from '../vm/pool-member.js';

const meta = (mode: string) => ({ plan: { network: { mode } } }) as never;

test('--pool takes 1 to 64 clones, --network only with it; bad values name the flag', () => {
  assert.equal(poolFromFlags({}), undefined);
  assert.deepEqual(poolFromFlags({ pool: '3' }), { size: 3, network: undefined });
  assert.deepEqual(poolFromFlags({ pool: '1', network: 'rootless' }), { size: 1, network: 'rootless' });
  assert.throws(() => poolFromFlags({ pool: '0' }), /invalid --pool "0": it must be a whole number from 1 to 64/);
  assert.throws(() => poolFromFlags({ pool: '2x' }), /invalid --pool "2x"/);
  assert.throws(() => poolFromFlags({ pool: '65' }), /invalid --pool "65"/);
  assert.throws(() => poolFromFlags({ network: 'none' }), /--network is the network of pooled clones: it needs --pool/);
  assert.throws(() => poolFromFlags({ pool: '1', network: 'bridged' }, false), /bridged networking needs root/);
  assert.throws(() => poolFromFlags({ pool: '1', network: 'wifi' }), /--network/);
});

test('a clone\'s network is its own flag, else its source\'s (rootless for non-root)', () => {
  assert.equal(cloneNetwork(meta('bridged'), {}, true), 'bridged');
  assert.equal(cloneNetwork(meta('bridged'), {}, false), 'rootless');
  assert.equal(cloneNetwork(meta('none'), {}, false), 'none');
  assert.equal(cloneNetwork(meta('bridged'), { network: 'rootless' }, true), 'rootless');
});

test('a pool hands out clones on its network, for --exec or -d; others start a clone of their own', () => {
  const isRoot = (process.getuid?.() ?? 0) === 0;
  const source = isRoot ? 'bridged' : 'rootless';
  assert.equal(unpoolable(source, meta(source), {}), undefined);
  assert.equal(unpoolable('none', meta('none'), { exec: 'true' }), undefined);
  assert.match(unpoolable(source, meta(source), { network: 'none' })!, /the pool's clones have --network/);
  assert.equal(unpoolable(source, meta(source), { map: ['/a:/b'] }), undefined);
  assert.match(unpoolable(source, meta(source), { tty: true })!, /no container terminal/);
  assert.match(unpoolable(source, meta(source), { jail: false })!, /a pooled clone runs in its jail/);
  assert.equal(unpoolable(source, meta(source), { tty: true, exec: 'sh' }), undefined);
});

test('QEMU adds a forward to a running user-mode NIC with HMP hostfwd_add', () => {
  assert.equal(hostfwdAddCommand('net0', { proto: 'tcp', hostIp: '127.0.0.1', hostPort: 8080, guestPort: 80 }), 'hostfwd_add net0 tcp:127.0.0.1:8080-:80');
  assert.equal(hostfwdAddCommand('net0', { proto: 'udp', hostIp: '0.0.0.0', hostPort: 53, guestPort: 5353 }), 'hostfwd_add net0 udp:0.0.0.0:53-:5353');
});

test('a pooled clone restores, connects and rehearses an exec first; its name, network, hostname and clock come after the hand-out', () => {
  const link = { send: () => {}, handout: new Promise<never>(() => {}), ended: new Promise<void>(() => {}) };
  const names = poolMemberSteps({ servePid: 1, network: 'bridged' }, link).map((s) => s.name);
  assert.deepEqual(names, ['preflight', 'reap', 'snapshot', 'driver', 'nested-volumes', 'pool-dir', 'pool-network', 'disks', 'jail', 'restore', 'agent', 'hello', 'warm-exec', 'handout', 'claim-name', 'log', 'network', 'network-connect', 'volumes', 'restored', 'network-ready', 'control-socket']);
});
