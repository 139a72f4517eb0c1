import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moduleName, parseModulesDep, resolveModules } from './modules.js';

const DEP = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/fuse/fuse.ko:
`;

test('dependencies come before the modules that need them, each once', () => {
  const { order, missing } = resolveModules(parseModulesDep(DEP), ['virtio_mmio', 'virtio-blk', 'virtio_net']);
  assert.deepEqual(missing, []);
  assert.equal(new Set(order).size, order.length);
  const at = (m: string) => order.findIndex((p) => moduleName(p) === m);
  assert.ok(at('virtio_ring') < at('virtio_mmio'));
  assert.ok(at('failover') < at('net_failover') && at('net_failover') < at('virtio_net'));
  assert.equal(at('fuse'), -1);
});

test('unknown modules are reported as missing', () => {
  assert.deepEqual(resolveModules(parseModulesDep(DEP), ['ext4', 'fuse']).missing, ['ext4']);
});

test('a dependency cycle is an error', () => {
  assert.throws(() => resolveModules(parseModulesDep('a.ko: b.ko\nb.ko: a.ko\n'), ['a']), /cycle/);
});

test('module names drop directories, suffixes and dashes', () => {
  assert.equal(moduleName('kernel/fs/fuse/fuse.ko'), 'fuse');
  assert.equal(moduleName('x/vmw_vsock-virtio.ko.xz'), 'vmw_vsock_virtio');
});
