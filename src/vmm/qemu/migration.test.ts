import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from '../../util/exec.js';
import { connectUnix } from '../../util/unix-socket.js';
import { feedDeviceState, loadDeviceState, saveDeviceState } from './migration.js';
import { spawnUnjailed } from './process.js';
import { QmpClient } from './qmp.js';

// QEMU reads the stream up to its end and closes the socket at once: the feed must count
// as done whether or not its own half-close completed first (a stream pipeline into the
// socket rejected about half of these with "Premature close").
test('a device-state feed is done once the peer has every byte, even when it closes first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-mig-'));
  try {
    const file = join(dir, 'state');
    const data = randomBytes(86_354);
    writeFileSync(file, data);
    for (let i = 0; i < 100; i++) {
      const path = join(dir, `in-${i}.sock`);
      const got: Buffer[] = [];
      const received = new Promise<Buffer>((resolve) => {
        const server = createServer((s: Socket) => {
          let n = 0;
          s.on('data', (d: Buffer) => {
            got.push(d);
            n += d.length;
            if (n >= data.length) {
              s.destroy();
              server.close();
              resolve(Buffer.concat(got));
            }
          });
        });
        server.listen(path);
      });
      await new Promise((r) => setTimeout(r, 0));
      const sock = await connectUnix(path);
      await feedDeviceState(sock, file);
      assert.ok((await received).equals(data), `round ${i}: the peer got the file`);
      sock.destroy();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Real QEMUs with no guest (-M none): no VM, so no VM lock. One saves its device state,
// fresh ones load it, each through the same code the driver uses.
test('real QEMU: device state saved by one QEMU loads into another, every time', async (t) => {
  if (!(await which('qemu-system-x86_64'))) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: needs qemu-system-x86 ***\n`);
    return t.skip('needs qemu-system-x86');
  }
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-mig-'));
  const start = async (name: string, incoming: boolean) => {
    const qmpPath = join(dir, `${name}.qmp`);
    const args = ['-M', 'none', '-nodefaults', '-display', 'none', '-S', '-qmp', `unix:${qmpPath},server=on,wait=off`, ...(incoming ? ['-incoming', 'defer'] : [])];
    const vmm = spawnUnjailed('qemu-system-x86_64', args, undefined);
    let gone = false;
    void vmm.exited.then(() => (gone = true));
    const qmp = await QmpClient.connect(qmpPath, 10_000, () => !gone);
    return { vmm, qmp, gone: () => gone };
  };
  try {
    const src = await start('src', false);
    const state = join(dir, 'state');
    try {
      await saveDeviceState(src.qmp, join(dir, 'out.sock'), state, undefined);
    } finally {
      src.qmp.close();
      src.vmm.kill();
      await src.vmm.exited;
    }
    assert.ok(statSync(state).size > 12, `${statSync(state).size} bytes`);
    assert.ok(readFileSync(state).subarray(0, 4).equals(Buffer.from('QEVM')), 'a QEMU migration stream');
    // A stream cut short: QEMU's verdict fails the load, however the feed ended.
    const cut = join(dir, 'cut');
    writeFileSync(cut, readFileSync(state).subarray(0, 12));
    const bad = await start('bad', true);
    try {
      await assert.rejects(loadDeviceState(bad.qmp, join(dir, 'bad.sock'), cut, () => !bad.gone()), /migration failed|QEMU exited during the migration|QEMU closed its control socket/);
    } finally {
      bad.qmp.close();
      bad.vmm.kill();
      await bad.vmm.exited;
    }
    for (let i = 0; i < 10; i++) {
      const dst = await start(`dst${i}`, true);
      try {
        await loadDeviceState(dst.qmp, join(dir, `in${i}.sock`), state, () => !dst.gone());
        const status = await dst.qmp.execute<{ status: string }>('query-migrate');
        assert.equal(status.status, 'completed', `round ${i}`);
      } finally {
        dst.qmp.close();
        dst.vmm.kill();
        await dst.vmm.exited;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
