import { test } from 'node:test';
import assert from 'node:assert/strict';
import { podmanPassthroughWords } from './podman-passthrough.js';
import { isFcvmError } from '../errors/fcvm-error.js';

test('each flag becomes one word for the guest\'s podman, in a fixed order', () => {
  assert.deepEqual(podmanPassthroughWords({}), []);
  assert.deepEqual(podmanPassthroughWords({
    readOnly: 'true', readOnlyTmpfs: 'false', tmpfs: ['/scratch:size=8m,mode=1777', '/cache'], capDrop: ['ALL'], capAdd: ['net_bind_service'],
    securityOpt: ['no-new-privileges'], sysctl: ['kernel.msgmax=8192'], ulimit: ['nofile=256:512'], groupAdd: ['1234'],
    shmSize: '32m', umask: '0077', unsetenv: ['container'], unsetenvAll: true,
  }), [
    '--read-only', '--read-only-tmpfs=false', '--tmpfs=/scratch:size=8m,mode=1777', '--tmpfs=/cache', '--cap-add=net_bind_service', '--cap-drop=ALL',
    '--security-opt=no-new-privileges', '--sysctl=kernel.msgmax=8192', '--ulimit=nofile=256:512', '--group-add=1234',
    '--shm-size=32m', '--umask=0077', '--unsetenv=container', '--unsetenv-all',
  ]);
});

test('a bad value is refused in one line that names the flag and shows a good one', () => {
  const refused = (flags: object, re: RegExp) =>
    assert.throws(() => podmanPassthroughWords(flags), (e) => isFcvmError(e) && e.code === 'INVALID_OPTION' && re.test(e.message) && !e.message.includes('\n'));
  refused({ readOnly: 'yes' }, /invalid --read-only "yes": not true or false/);
  refused({ tmpfs: ['scratch'] }, /invalid --tmpfs "scratch"/);
  refused({ tmpfs: ['/a b'] }, /invalid --tmpfs/);
  refused({ capAdd: ['NET ADMIN'] }, /invalid --cap-add/);
  refused({ securityOpt: ['seccomp=/etc/profile.json'] }, /invalid --security-opt "seccomp=\/etc\/profile\.json"/);
  refused({ sysctl: ['kernel.msgmax'] }, /invalid --sysctl/);
  refused({ ulimit: ['nofile=lots'] }, /invalid --ulimit/);
  refused({ umask: '999' }, /invalid --umask "999"/);
  refused({ shmSize: '1 g' }, /invalid --shm-size/);
  refused({ unsetenv: ['A-B'] }, /invalid --unsetenv/);
  refused({ groupAdd: ['--privileged'] }, /invalid --group-add/);
  refused({ capDrop: Array(65).fill('ALL') }, /given more than 64 times/);
});

test('hosts, resolver, zone and timeout flags: checked addresses and names, one word each', () => {
  assert.deepEqual(podmanPassthroughWords({
    addHost: ['db.lan:10.0.0.5', 'a;b.lan:fd00::1'], hosts: 'false', dns: ['10.0.0.53', '2001:db8::53'], dnsSearch: ['corp.lan', '.'],
    dnsOption: ['ndots:3', 'rotate'], tz: 'Europe/Paris', timeout: '600',
  }), [
    '--add-host=db.lan:10.0.0.5', '--add-host=a;b.lan:fd00::1', '--no-hosts=false', '--dns=10.0.0.53', '--dns=2001:db8::53',
    '--dns-search=corp.lan', '--dns-search=.', '--dns-option=ndots:3', '--dns-option=rotate', '--tz=Europe/Paris', '--timeout=600',
  ]);
  const refused = (flags: object, re: RegExp) => assert.throws(() => podmanPassthroughWords(flags), (e) => isFcvmError(e) && re.test(e.message));
  refused({ addHost: ['db.lan:10.0.0.999'] }, /invalid --add-host "db\.lan:10\.0\.0\.999"/);
  refused({ addHost: ['db lan:10.0.0.5'] }, /invalid --add-host/);
  refused({ addHost: ['db.lan'] }, /invalid --add-host/);
  refused({ dns: ['resolver.lan'] }, /invalid --dns "resolver\.lan"/);
  refused({ dnsSearch: ['a..b'] }, /invalid --dns-search/);
  refused({ dnsOption: ['ndots 3'] }, /invalid --dns-option/);
  refused({ tz: '../../etc/passwd' }, /invalid --tz/);
  refused({ timeout: '-1' }, /invalid --timeout/);
});
