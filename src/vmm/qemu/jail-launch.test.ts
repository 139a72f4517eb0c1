import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, chownSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostCgroups } from '../../jail/cgroup-host.js';
import { JAIL_ID_BASE } from '../../jail/identity.js';
import type { JailSpec } from '../../jail/spec.js';
import { connectWhenReady } from '../../util/unix-socket.js';
import { which } from '../../util/exec.js';
import { ownerTag } from '../../util/owner-tag.js';
import type { VmSpec } from '../driver.js';
import { SANDBOX } from './command.js';
import { fdsOutsideJail } from '../../../test/helpers.js';
import { spawnJailed } from './jail.js';

// A real QEMU with no guest (-M none) started in its jail: quick, and no VM, so no VM lock.
test('a jailed QEMU: its own uid, no capabilities, no_new_privs, seccomp, namespaces and root, in its cgroup', async (t) => {
  const missing = process.getuid?.() !== 0 ? 'needs root' : !(await which('bwrap')) ? 'needs bubblewrap' : !(await which('qemu-system-x86_64')) ? 'needs qemu-system-x86' : undefined;
  if (missing) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: ${missing} ***\n`);
    return t.skip(missing);
  }
  const base = mkdtempSync(join(tmpdir(), 'fcvm-jl-'));
  const uid = JAIL_ID_BASE + 16383;
  const runDir = join(base, 'vmm');
  mkdirSync(runDir, { mode: 0o700 });
  chownSync(runDir, uid, uid);
  mkdirSync(join(base, 'jail'), { mode: 0o700 });
  writeFileSync(join(base, 'kernel'), 'not a kernel');
  const choice = await hostCgroups();
  // Named by this live process (PID-START): another fcvm's reaper, running meanwhile, leaves it alone.
  const id = `ee12cd-${ownerTag()}`;
  const limits = { memoryBytes: 256 * 2 ** 20, pids: 32, cpuWeight: 100 };
  const cgroup = choice.host ? await choice.host.create(id, limits) : undefined;
  const jail: JailSpec = { mode: 'full', id, uid, gid: uid, cgroup, limits, privateDir: join(base, 'jail'), namespaces: true };
  const spec = { name: 'jl', id, runDir, kernel: join(base, 'kernel'), cmdline: '', vcpus: 1, memoryMiB: 64, accel: 'tcg', disks: [], nics: [] } as VmSpec;
  const qmp = join(runDir, 'qmp.sock');
  const args = ['-M', 'none', '-nodefaults', '-display', 'none', '-S', '-chardev', `socket,id=qmp,path=${qmp},server=on,wait=off`, '-mon', 'chardev=qmp,mode=control', '-sandbox', SANDBOX];
  const vmm = await spawnJailed(spec, jail, { qemu: (await which('qemu-system-x86_64'))!, setpriv: (await which('setpriv'))!, args, memory: { path: '/nonexistent', shared: false }, fds: [], cacheFile: undefined });
  try {
    const sock = await connectWhenReady(qmp, 10_000, () => true);
    const greeting = await new Promise<string>((r) => sock.once('data', (d) => r(String(d))));
    sock.destroy();
    assert.match(greeting, /"QMP"/);
    const st = readFileSync(`/proc/${vmm.pid}/status`, 'utf8');
    assert.match(st, new RegExp(`Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}`));
    assert.match(st, /CapEff:\s+0000000000000000/);
    assert.match(st, /CapBnd:\s+0000000000000000/);
    assert.match(st, /NoNewPrivs:\s+1/);
    assert.match(st, /Seccomp:\s+2/);
    for (const n of ['mnt', 'pid', 'ipc', 'uts']) assert.notEqual(readlinkSync(`/proc/${vmm.pid}/ns/${n}`), readlinkSync(`/proc/self/ns/${n}`));
    assert.ok(!existsSync(`/proc/${vmm.pid}/root/etc/passwd`));
    assert.ok(existsSync(`/proc/${vmm.pid}/root${runDir}/qmp.sock`));
    // No fd fcvm holds or inherited reaches the VMM: each of its fds is its own, or a
    // file inside its root (an fd of a file outside would be a way out).
    assert.deepEqual(fdsOutsideJail(vmm.pid), []);
    if (cgroup) for (const d of cgroup.dirs) assert.ok(readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').includes(String(vmm.pid)), d);
    else process.stderr.write(`\n*** SKIPPED the cgroup part of ${t.name}: ${choice.why} ***\n`);
    vmm.kill();
    assert.deepEqual(await vmm.exited, { code: null, signal: 'SIGKILL' });
  } finally {
    vmm.kill();
    await vmm.exited;
    await cgroup?.remove();
    rmSync(base, { recursive: true, force: true });
  }
});
