import { test } from 'node:test';
import assert from 'node:assert/strict';
import { qemuArgs } from './command.js';
import type { VmSpec } from '../driver.js';

const spec: VmSpec = {
  name: 'vm1',
  id: 'abc123-1-1',
  runDir: '/run/x',
  kernel: '/k/vmlinuz',
  initrd: '/k/initrd',
  cmdline: 'console=ttyS0',
  vcpus: 2,
  memoryMiB: 512,
  accel: 'tcg',
  disks: [
    { id: 'root', path: '/d/over,lay.qcow2', format: 'qcow2', readOnly: false },
    { id: 'image', path: '/c/img.tar', format: 'raw', readOnly: true },
  ],
  nics: [],
};
const memory = { path: '/dev/shm/m,em', shared: true };

const after = (args: readonly string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

test('tcg uses multi-threaded TCG with -cpu max; kvm uses -cpu host', () => {
  assert.deepEqual(after(qemuArgs(spec, { memory }), '-accel'), ['tcg,thread=multi']);
  assert.deepEqual(after(qemuArgs(spec, { memory }), '-cpu'), ['max']);
  assert.deepEqual(after(qemuArgs({ ...spec, accel: 'kvm' }, { memory }), '-cpu'), ['host']);
});

test('disks become blockdevs in order, with serials, read-only flags and escaped commas', () => {
  const blockdevs = after(qemuArgs(spec, { memory }), '-blockdev');
  assert.equal(blockdevs.length, 2);
  assert.match(blockdevs[0]!, /^driver=qcow2,node-name=root,file\.driver=file,file\.filename=\/d\/over,,lay\.qcow2,read-only=off/);
  assert.match(blockdevs[1]!, /driver=raw,node-name=image,.*read-only=on/);
  assert.deepEqual(after(qemuArgs(spec, { memory }), '-device').filter((d) => d.startsWith('virtio-blk')), [
    'virtio-blk-device,drive=root,serial=root',
    'virtio-blk-device,drive=image,serial=image',
  ]);
});

test('sizes, sockets and the agent port are on the command line; the value is frozen', () => {
  const args = qemuArgs(spec, { memory });
  assert.deepEqual(after(args, '-smp'), ['2']);
  assert.deepEqual(after(args, '-m'), ['512M']);
  assert.ok(args.includes('socket,id=qmp,path=/run/x/qmp.sock,server=on,wait=off'));
  assert.ok(args.includes('virtserialport,chardev=ch-agent,name=fcvm.agent'));
  assert.ok(args.includes('virtserialport,chardev=ch-fuse,name=fcvm.fuse'));
  assert.ok(args.includes('-no-reboot'));
  assert.throws(() => (args as string[]).push('x'));
});

test('NICs become TAP netdevs', () => {
  const args = qemuArgs({ ...spec, nics: [{ kind: 'tap', id: 'net0', tap: 'tap0', mac: '02:00:00:00:00:01' }] }, { memory });
  assert.deepEqual(after(args, '-netdev'), ['tap,id=net0,ifname=tap0,script=no,downscript=no']);
});

test('user-mode NICs carry their host forwards', () => {
  const args = qemuArgs({ ...spec, nics: [{ kind: 'user', id: 'net0', mac: '02:00:00:00:00:01', hostForwards: [
    { proto: 'tcp', hostIp: '127.0.0.1', hostPort: 8081, guestPort: 80 },
    { proto: 'udp', hostIp: '0.0.0.0', hostPort: 5353, guestPort: 53 },
  ] }] }, { memory });
  assert.deepEqual(after(args, '-netdev'), ['user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,hostfwd=tcp:127.0.0.1:8081-:80,hostfwd=udp:0.0.0.0:5353-:53']);
});

test('RAM is a memory-backend-file: shared for a cold VM, private and opened read-only for a clone', () => {
  assert.match(after(qemuArgs(spec, { memory }), '-M')[0]!, /memory-backend=mem/);
  assert.deepEqual(after(qemuArgs(spec, { memory }), '-object'), ['memory-backend-file,id=mem,size=512M,mem-path=/dev/shm/m,,em,share=on']);
  // Read-only: QEMU would punch a reported free page out of a privately mapped file too,
  // and the snapshot's file is every sibling clone's memory.
  assert.match(after(qemuArgs(spec, { memory: { path: '/s/memory', shared: false }, freePageReporting: true }), '-object')[0]!, /,share=off,readonly=on,rom=off$/);
  // QEMU before 8.2 has no rom=off (readonly=on alone would map it read-only), and no balloon then.
  assert.match(after(qemuArgs(spec, { memory: { path: '/s/memory', shared: false } }), '-object')[0]!, /,share=off$/);
});

test('with free page reporting, a balloon that only reports (never inflated) comes last, so no other device moves', () => {
  const devices = after(qemuArgs(spec, { memory, freePageReporting: true }), '-device');
  assert.equal(devices.at(-1), 'virtio-balloon-device,free-page-reporting=on');
  assert.deepEqual(devices.slice(0, -1), after(qemuArgs(spec, { memory }), '-device'));
});

test('a restore waits for its incoming state; a boot does not', () => {
  assert.deepEqual(after(qemuArgs(spec, { incoming: true, memory }), '-incoming'), ['defer']);
  assert.deepEqual(after(qemuArgs(spec, { memory }), '-incoming'), []);
});

test('a clone may leave out the initrd and get a small translation cache', () => {
  const args = qemuArgs({ ...spec, initrd: undefined, tcgCacheMiB: 32 }, { memory });
  assert.deepEqual(after(args, '-initrd'), []);
  assert.deepEqual(after(args, '-accel'), ['tcg,thread=multi,tb-size=32']);
});

test('a nested-profile VM under KVM gets the host\'s virtualization extension; under TCG -cpu max has SVM', () => {
  assert.deepEqual(after(qemuArgs({ ...spec, accel: 'kvm', nested: true }, { memory, cpuVirt: 'svm' }), '-cpu'), ['host,+svm']);
  assert.deepEqual(after(qemuArgs({ ...spec, accel: 'kvm', nested: true }, { memory, cpuVirt: 'vmx' }), '-cpu'), ['host,+vmx']);
  assert.deepEqual(after(qemuArgs({ ...spec, nested: true }, { memory }), '-cpu'), ['max']);
});
