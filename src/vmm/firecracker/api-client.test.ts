import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFcvmError } from '../../errors/fcvm-error.js';
import { FirecrackerApi } from './api-client.js';
import { bootRequests, pauseRequest, resumeRequest, snapshotCreateRequest, snapshotLoadRequest, UnsupportedByVersion, versionRequest, type FcMachine } from './requests.js';
import { startContractServer, type ContractServer } from './testing/api-contract.js';
import { atLeast, parseVersion } from './version.js';

const machine: FcMachine = {
  vcpus: 2,
  memoryMiB: 512,
  kernel: 'vmlinux',
  initrd: 'initrd.cpio',
  bootArgs: 'console=ttyS0 reboot=k panic=-1',
  drives: [{ id: 'root', path: 'root.raw', readOnly: false }, { id: 'image', path: 'image', readOnly: true }],
  nics: [{ id: 'net0', tap: 'tap0', mac: '52:54:00:ab:cd:ef' }],
  vsock: { cid: 3, udsPath: 'v.sock' },
};

describe('the Firecracker API client, request by request against the documented API', () => {
  let dir = '';
  const servers: ContractServer[] = [];
  const serve = async (version: string, opts: { faults?: Record<string, string>; hang?: string[] } = {}) => {
    const socket = join(dir, `api-${servers.length}.sock`);
    const s = await startContractServer(socket, { version, ...opts });
    servers.push(s);
    return { server: s, api: new FirecrackerApi(socket) };
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fcvm-fcapi-'));
  });
  after(async () => {
    for (const s of servers) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const version of ['1.8.0', '1.10.1', '1.16.1']) {
    test(`Firecracker ${version}: GET /version, the boot sequence, pause, snapshot and resume all match the document`, async () => {
      const { server, api } = await serve(version);
      try {
        const got = (await api.send(versionRequest)) as { firecracker_version: string };
        const v = parseVersion(got.firecracker_version)!;
        for (const r of bootRequests(machine, v)) await api.send(r);
        await api.send(pauseRequest);
        await api.send(snapshotCreateRequest('state', 'memory'));
        await api.send(resumeRequest);
        assert.deepEqual(server.violations(), []);
        const paths = server.requests.map((r) => `${r.method} ${r.path}`);
        assert.deepEqual(paths.slice(0, 5), ['GET /version', 'PUT /machine-config', 'PUT /boot-source', 'PUT /drives/root', 'PUT /drives/image']);
        assert.equal(paths.includes('PUT /entropy'), atLeast(v, [1, 4, 0]));
        assert.equal(paths.indexOf('PUT /actions'), paths.indexOf('PATCH /vm') - 1, 'InstanceStart comes last of the boot');
        assert.ok(server.requests.every((r) => r.body === undefined || Number(r.headers['content-length']) > 0));
      } finally {
        api.close();
      }
    });
  }

  test('snapshot loads: File and Uffd backends; overrides only where the version knows them', async () => {
    const old = await serve('1.10.1');
    const cur = await serve('1.16.1');
    try {
      const v10 = parseVersion('1.10.1')!;
      const v16 = parseVersion('1.16.1')!;
      await old.api.send(snapshotLoadRequest({ statePath: 'state', memory: { kind: 'file', path: 'memory' }, resume: true }, v10));
      await old.api.send(snapshotLoadRequest({ statePath: 'state', memory: { kind: 'uffd', socket: 'uffd.sock' }, resume: true }, v10));
      assert.throws(() => snapshotLoadRequest({ statePath: 's', memory: { kind: 'file', path: 'm' }, resume: true, networkOverrides: [{ id: 'net0', tap: 'tap1' }] }, v10), UnsupportedByVersion);
      assert.throws(() => snapshotLoadRequest({ statePath: 's', memory: { kind: 'file', path: 'm' }, resume: true, vsockPath: 'x.sock' }, v10), /vsock_override\) needs Firecracker 1\.16\.0/);
      await cur.api.send(snapshotLoadRequest({
        statePath: 'state', memory: { kind: 'uffd', socket: 'uffd.sock' }, resume: false, networkOverrides: [{ id: 'net0', tap: 'tap1' }], vsockPath: 'v2.sock',
      }, v16));
      assert.deepEqual(old.server.violations(), []);
      assert.deepEqual(cur.server.violations(), []);
      assert.deepEqual((cur.server.requests[0]!.body as { mem_backend: unknown }).mem_backend, { backend_type: 'Uffd', backend_path: 'uffd.sock' });
    } finally {
      old.api.close();
      cur.api.close();
    }
  });

  test('the contract can fail: a field the document does not have is a 400, mapped into the catalogue', async () => {
    const { server, api } = await serve('1.10.1');
    try {
      await assert.rejects(api.send({ method: 'PUT', path: '/vsock', body: { guest_cid: 3, uds_path: 'v.sock', mtu: 1500 } }), (e) => {
        assert.ok(isFcvmError(e));
        assert.equal(e.code, 'FIRECRACKER_API');
        assert.match(e.message, /^Firecracker refused PUT \/vsock \(HTTP 400\): /);
        return true;
      });
      // A field that only newer releases know is refused by an older one.
      await assert.rejects(api.send({ method: 'PUT', path: '/network-interfaces/net0', body: { iface_id: 'net0', host_dev_name: 'tap0', mtu: 1400 } }), /HTTP 400/);
      await assert.rejects(api.send({ method: 'PUT', path: '/drives/root', body: { drive_id: 'other', is_root_device: false } }), /does not match/);
      assert.equal(server.violations().length, 3);
    } finally {
      api.close();
    }
  });

  test('fault_message becomes one line with a hint chosen by what Firecracker said', async () => {
    const fault = 'Cannot start microvm that was not configured: Error creating KVM object: Permission denied (os error 13)';
    const { api } = await serve('1.10.1', { faults: { 'PUT /actions': fault, 'PUT /snapshot/load': 'Load snapshot error: Failed to restore from snapshot: Cannot connect to the page fault handler: No such file' } });
    try {
      await assert.rejects(api.send({ method: 'PUT', path: '/actions', body: { action_type: 'InstanceStart' } }), (e) => {
        assert.ok(isFcvmError(e));
        assert.equal(e.oneLine(), `Firecracker refused PUT /actions (HTTP 400): ${fault}. Firecracker needs a usable /dev/kvm: load kvm_intel or kvm_amd and check its permissions, or use --hypervisor qemu`);
        return true;
      });
      await assert.rejects(api.send(snapshotLoadRequest({ statePath: 's', memory: { kind: 'uffd', socket: 'u' }, resume: true }, [1, 10, 1])), (e) => isFcvmError(e) && /memory server/.test(e.hint ?? ''));
    } finally {
      api.close();
    }
  });

  test('a Firecracker that does not answer, or is not there, is an error within the timeout', async () => {
    const { api } = await serve('1.10.1', { hang: ['PATCH /vm'] });
    try {
      const t0 = Date.now();
      await assert.rejects(api.send(pauseRequest, 300), (e) => isFcvmError(e) && e.code === 'VMM_FAILED' && /did not answer PATCH \/vm within 0\.3s/.test(e.message));
      assert.ok(Date.now() - t0 < 2000);
    } finally {
      api.close();
    }
    const gone = new FirecrackerApi(join(dir, 'nobody.sock'));
    await assert.rejects(gone.send(versionRequest), (e) => isFcvmError(e) && /cannot reach Firecracker's API socket for GET \/version \(ENOENT\)/.test(e.message));
    gone.close();
  });
});

test('versions: parsed from what GET /version says, compared field by field', () => {
  assert.deepEqual(parseVersion('1.10.1'), [1, 10, 1]);
  assert.deepEqual(parseVersion('v1.17.0-dev'), [1, 17, 0]);
  assert.equal(parseVersion('latest'), undefined);
  assert.ok(atLeast([1, 12, 0], [1, 12, 0]));
  assert.ok(atLeast([2, 0, 0], [1, 16, 0]));
  assert.ok(!atLeast([1, 9, 9], [1, 10, 0]));
});
