import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backingChain, backingFile } from './backing-chain.js';
import { bwrapArgs, type JailPlan } from './bwrap.js';
import { parseLdd } from './jail-files.js';
import { qemuArgs, SANDBOX } from './command.js';
import { signalFromShellCode } from './process.js';
import type { VmSpec } from '../driver.js';

const plan: JailPlan = {
  host: { files: ['/usr/bin/qemu', '/usr/lib/x86_64-linux-gnu/libc.so.6'], symlinks: [{ path: '/lib', target: 'usr/lib' }, { path: '/usr/lib/x86_64-linux-gnu/libz.so.1', target: 'libz.so.1.2' }] },
  readOnly: ['/var/lib/fcvm/artifacts/k/vmlinuz'],
  writable: ['/var/lib/fcvm/vms/x/vmm', '/dev/shm/fcvm-mem-x'],
  devices: [{ source: '/dev/null', dest: '/dev/null' }, { source: '/var/lib/fcvm/vms/x/jail/tun', dest: '/dev/net/tun' }],
  proc: false,
  userNamespace: false,
  identity: { uid: 2046820352, gid: 2046820352 },
  chdir: '/var/lib/fcvm/vms/x/vmm',
  infoFd: 3,
  blockFd: 4,
  setpriv: '/usr/bin/setpriv',
  command: ['/usr/bin/qemu', '-M', 'microvm'],
  path: '/usr/bin',
};

const pairs = (args: readonly string[], flag: string) => args.flatMap((a, i) => (a === flag ? [[args[i + 1], args[i + 2]]] : []));

test('bubblewrap: new namespaces, an empty read-only root with only the listed files, then setpriv drops everything', () => {
  const a = bwrapArgs(plan);
  for (const f of ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--die-with-parent', '--new-session', '--clearenv']) assert.ok(a.includes(f), f);
  // bubblewrap's init stays PID 1 (root's uid): its parent-death signal always arrives.
  assert.ok(!a.includes('--as-pid-1'));
  assert.ok(!a.includes('--unshare-user') && !a.includes('--proc') && !a.includes('--unshare-net'));
  assert.deepEqual(pairs(a, '--ro-bind').map(([s]) => s), ['/usr/bin/qemu', '/usr/lib/x86_64-linux-gnu/libc.so.6', '/var/lib/fcvm/artifacts/k/vmlinuz']);
  assert.deepEqual(pairs(a, '--bind'), [['/var/lib/fcvm/vms/x/vmm', '/var/lib/fcvm/vms/x/vmm'], ['/dev/shm/fcvm-mem-x', '/dev/shm/fcvm-mem-x']]);
  assert.deepEqual(pairs(a, '--dev-bind')[1], ['/var/lib/fcvm/vms/x/jail/tun', '/dev/net/tun']);
  assert.deepEqual(pairs(a, '--symlink')[0], ['usr/lib', '/lib']);
  // Parents are made 0755 before anything is put in them, and never where a symlink goes.
  const dirs = a.flatMap((x, i) => (x === '--dir' ? [a[i + 1]!] : []));
  assert.ok(dirs.includes('/usr') && dirs.includes('/usr/lib/x86_64-linux-gnu') && dirs.includes('/dev/net') && !dirs.includes('/lib'));
  assert.ok(a.indexOf('--dir') < a.indexOf('--symlink') && a.indexOf('--remount-ro') > a.lastIndexOf('--dev-bind'));
  const inner = a.slice(a.indexOf('--') + 1);
  assert.deepEqual(inner.slice(0, inner.indexOf('--')), ['/usr/bin/setpriv', '--reuid', '2046820352', '--regid', '2046820352', '--clear-groups', '--bounding-set', '-all', '--inh-caps', '-all', '--no-new-privs', '--pdeathsig', 'KILL']);
  assert.deepEqual(inner.slice(inner.indexOf('--') + 1), ['/usr/bin/qemu', '-M', 'microvm']);
});

test('bubblewrap for an unprivileged user: a user namespace, no identity change, and a procfs when fds are passed', () => {
  const a = bwrapArgs({ ...plan, userNamespace: true, identity: undefined, proc: true });
  assert.ok(a.includes('--unshare-user') && a.includes('--disable-userns'));
  assert.deepEqual(pairs(a, '--proc')[0]?.[0], '/proc');
  assert.ok(!a.includes('--reuid') && !a.includes('--bounding-set'));
});

test('QEMU under the jail: seccomp filter, capped I/O threads, RAM from a passed fd', () => {
  const spec = { name: 'v', id: 'abc123-1-1', runDir: '/r', kernel: '/k', cmdline: '', vcpus: 1, memoryMiB: 256, accel: 'tcg', disks: [], nics: [] } as VmSpec;
  const plain = qemuArgs(spec, { memory: { path: '/m', shared: false } });
  assert.ok(!plain.includes('-sandbox'));
  const jailed = qemuArgs(spec, { sandbox: true, ioThreads: 16, memory: { path: '/proc/self/fd/3', shared: false } });
  assert.equal(jailed[jailed.indexOf('-sandbox') + 1], SANDBOX);
  assert.match(SANDBOX, /^on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny$/);
  assert.ok(jailed.includes('main-loop,id=main-loop,thread-pool-max=16'));
  assert.ok(jailed.some((x) => x.includes('mem-path=/proc/self/fd/3,share=off')));
});

test('a jailed nested-profile QEMU keeps its nested CPU: bubblewrap runs the very command line, sandbox and -cpu together', () => {
  const spec = { name: 'v', id: 'abc123-1-1', runDir: '/r', kernel: '/k', cmdline: '', vcpus: 1, memoryMiB: 256, accel: 'kvm', nested: true, disks: [], nics: [] } as VmSpec;
  const args = qemuArgs(spec, { sandbox: true, ioThreads: 16, memory: { path: '/m', shared: true }, cpuVirt: 'svm' });
  const a = bwrapArgs({ ...plan, command: ['qemu-system-x86_64', ...args] });
  const qemu = a.slice(a.lastIndexOf('--') + 1);
  assert.equal(qemu[qemu.indexOf('-cpu') + 1], 'host,+svm');
  assert.equal(qemu[qemu.indexOf('-accel') + 1], 'kvm');
  assert.equal(qemu[qemu.indexOf('-sandbox') + 1], SANDBOX);
  const tcg = qemuArgs({ ...spec, accel: 'tcg' }, { sandbox: true, memory: { path: '/m', shared: true } });
  assert.equal(tcg[tcg.indexOf('-cpu') + 1], 'max');
});

test('ldd output: every resolved library and the loader, once', () => {
  const out = [
    '/usr/bin/a:', '\tlinux-vdso.so.1 (0x00007ffd)', '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)', '\t/lib64/ld-linux-x86-64.so.2 (0x00007f)',
    '/usr/bin/b:', '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)', '\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x1)',
  ].join('\n');
  assert.deepEqual(parseLdd(out), ['/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2', '/lib/x86_64-linux-gnu/libz.so.1']);
});

test('bubblewrap\'s 128+N exit codes become signals', () => {
  assert.deepEqual(signalFromShellCode({ code: 137, signal: null }), { code: null, signal: 'SIGKILL' });
  assert.deepEqual(signalFromShellCode({ code: 1, signal: null }), { code: 1, signal: null });
  assert.deepEqual(signalFromShellCode({ code: null, signal: 'SIGTERM' }), { code: null, signal: 'SIGTERM' });
});

test('qcow2 backing chains are read from the headers, relative names against the image\'s directory', { skip: !hasQemuImg() && 'needs qemu-img' }, async () => {
  const d = mkdtempSync(join(tmpdir(), 'fcvm-chain-'));
  try {
    execFileSync('truncate', ['-s', '1M', join(d, 'base.raw')]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(d, 'base.raw'), join(d, 'mid.qcow2')]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'mid.qcow2', join(d, 'top.qcow2')]);
    assert.equal(await backingFile(join(d, 'base.raw')), undefined);
    assert.equal(await backingFile(join(d, 'top.qcow2')), join(d, 'mid.qcow2'));
    assert.deepEqual(await backingChain(join(d, 'top.qcow2')), [join(d, 'mid.qcow2'), join(d, 'base.raw')]);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

function hasQemuImg(): boolean {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
