import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firecrackerArgs, firecrackerCmdline, jailerArgs, jailerNamespaces, jailRoot } from './command.js';

test('firecracker is configured over its API; its arguments only name the socket, the id and the log', () => {
  assert.deepEqual(firecrackerArgs('ab12-3-4'), ['--api-sock', 'api.sock', '--id', 'ab12-3-4', '--log-path', 'firecracker.log', '--level', 'Warning', '--show-level']);
});

test('the jailer chroots, drops to the user, joins the namespace, then execs firecracker with the same arguments', () => {
  const args = jailerArgs({ jailer: { binary: '/usr/bin/jailer', uid: 123, gid: 456 }, firecracker: '/usr/bin/firecracker', id: 'ab12-3-4', chrootBase: '/d/vmm/ab12-3-4/jail', netns: 'fcvm-ab12-3-4' });
  const after = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(after('--id'), 'ab12-3-4');
  assert.equal(after('--exec-file'), '/usr/bin/firecracker');
  assert.equal(after('--uid'), '123');
  assert.equal(after('--gid'), '456');
  assert.equal(after('--chroot-base-dir'), '/d/vmm/ab12-3-4/jail');
  assert.equal(after('--netns'), '/run/netns/fcvm-ab12-3-4');
  assert.deepEqual(args.slice(args.indexOf('--') + 1), [...firecrackerArgs('ab12-3-4')]);
  assert.equal(jailRoot('/d/jail', 'x'), '/d/jail/firecracker/x/root');
  assert.ok(Object.isFrozen(args));
});

test('jailed by fcvm: the jailer joins the VM cgroup with its limits, inside new PID, IPC and UTS namespaces', () => {
  const cgroup = { version: 1 as const, parent: 'fcvm', values: ['memory.limit_in_bytes=1', 'pids.max=2'] };
  const args = jailerArgs({ jailer: { binary: '/usr/bin/jailer', uid: 1, gid: 1, cgroup }, firecracker: '/usr/bin/firecracker', id: 'ab12-3-4', chrootBase: '/j' });
  const head = args.slice(0, args.indexOf('--'));
  assert.deepEqual(head.slice(head.indexOf('--cgroup-version')), ['--cgroup-version', '1', '--parent-cgroup', 'fcvm', '--cgroup', 'memory.limit_in_bytes=1', '--cgroup', 'pids.max=2']);
  assert.ok(!head.includes('--netns'));
  // Without fcvm's cgroup, the jailer's own v2 layout, as before.
  const plain = jailerArgs({ jailer: { binary: '/usr/bin/jailer', uid: 1, gid: 1 }, firecracker: '/usr/bin/firecracker', id: 'x', chrootBase: '/j' });
  assert.deepEqual(plain.slice(plain.indexOf('--cgroup-version'), plain.indexOf('--')), ['--cgroup-version', '2']);
  assert.deepEqual(jailerNamespaces(), ['unshare', '--pid', '--ipc', '--uts', '--fork', '--kill-child=SIGKILL', '--']);
});

test('the guest command line: vsock channel, reboot to end the VM, and which /dev/vdX each disk is', () => {
  const line = firecrackerCmdline({ cmdline: 'console=ttyS0 reboot=t', disks: [
    { id: 'root', path: 'r', format: 'raw', readOnly: false },
    { id: 'image', path: 'i', format: 'raw', readOnly: true },
  ] });
  assert.equal(line, 'console=ttyS0 reboot=t reboot=k fcvm.channel=vsock fcvm.halt=reboot fcvm.disk.root=vda fcvm.disk.image=vdb');
});
