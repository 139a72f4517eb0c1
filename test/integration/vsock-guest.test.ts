import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import { execa } from 'execa';
import { CLI, fcvm, layout, spawnFcvm, vmsAvailable, waitFor } from '../helpers.js';

/**
 * The agent's AF_VSOCK code in a real guest. This host has no vsock device to give a
 * guest, but the guest kernel ships vsock_loopback: loaded in an fcvm guest, it lets
 * the agent's listener (VsockLink over libuv's pipe handle) and a host-side resumable
 * session meet over CID 1, on the guest's own Node.
 */
const VM = 'it-vsock';
let supervisor: ReturnType<typeof spawnFcvm> | undefined;
let dir = '';
let probe = '';

before(async () => {
  if (process.getuid?.() !== 0) return;
  dir = mkdtempSync(join(tmpdir(), 'fcvm-vsock-probe-'));
  probe = join(dir, 'vsock-probe.mjs');
  await build({ entryPoints: ['test/guest/vsock-probe.ts'], bundle: true, platform: 'node', format: 'esm', target: 'node18', external: ['koffi'], outfile: probe, logLevel: 'warning' });
  // The guest runs QEMU here (a loopback needs no device); --privileged is not needed for --vm.
  supervisor = spawnFcvm(['podman', 'run', '--hypervisor', 'qemu', '--network', 'none', '--name', VM, '--stop-timeout', '1', 'localhost/bb', '--', 'sleep', '600']);
  await waitFor(async () => (JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string }[]).some((v) => v.name === VM && v.status === 'healthy'), 180_000, `${VM} healthy`);
});

after(async () => {
  supervisor?.kill('SIGTERM');
  await supervisor;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The kernel artifact's vsock_loopback.ko. */
function loopbackModule(): string | undefined {
  const manifest = JSON.parse(readFileSync(layout.manifest, 'utf8')) as { kernel: { path: string }; kernelVersion: string };
  const p = join(dirname(manifest.kernel.path), 'modules', 'lib', 'modules', manifest.kernelVersion, 'kernel', 'net', 'vmw_vsock', 'vsock_loopback.ko');
  return existsSync(p) ? p : undefined;
}

const inVm = (args: string[], input?: string) => execa(process.execPath, [CLI, 'exec', ...(input !== undefined ? ['-i'] : []), VM, '--vm', '--', ...args], { reject: false, ...(input !== undefined ? { inputFile: input } : { stdin: 'ignore' }) });

test('in a real guest, the agent listens on AF_VSOCK, a host session connects over CID 1, and resumes after a cut', async (t) => {
  if (!vmsAvailable(t) || !supervisor) return;
  const ko = loopbackModule();
  if (!ko) return t.skip(`no vsock_loopback.ko in the kernel artifact (${readdirSync(layout.artifacts).join(', ')})`);
  const put = await inVm(['sh', '-c', 'cat > /tmp/vsock_loopback.ko && insmod /tmp/vsock_loopback.ko'], ko);
  assert.equal(put.exitCode, 0, String(put.stderr));
  // Next to the agent, so the guest's node finds koffi in /run/fcvm/node_modules.
  const copy = await inVm(['sh', '-c', 'cat > /run/fcvm/vsock-probe.mjs'], probe);
  assert.equal(copy.exitCode, 0, String(copy.stderr));
  const r = await inVm(['node', '/run/fcvm/vsock-probe.mjs']);
  const out = JSON.parse(String(r.stdout).trim().split('\n').pop() || '{}') as { ok: boolean; node?: string; first?: unknown; second?: unknown; sessions?: number; connects?: number; error?: string };
  assert.equal(out.ok, true, out.error ?? String(r.stderr));
  assert.match(out.node ?? '', /^v18\./, 'the guest\'s own Node');
  assert.deepEqual(out.first, { method: 'echo', params: { n: 1 } });
  assert.deepEqual(out.second, { method: 'echo', params: { n: 2 } });
  assert.equal(out.connects, 2, 'the cut connection was replaced');
  assert.equal(out.sessions, 1, 'by resuming the same session, not a new one');
});
