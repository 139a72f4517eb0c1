import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoLeftovers, fcvm, spawnFcvm, vmsAvailable, waitFor } from '../helpers.js';
import { freePort, httpGet, loopbackService, netSnapshot } from '../net-helpers.js';
import { assertUserLeftNothing, endsEarly, rootlessUser } from '../rootless.js';

interface Listed {
  name: string;
  pid: number;
  status: string;
  netIndex?: number;
  network: { mode: string; guestIp?: string; loopback: string; hostPath?: string; netns?: string; publish: unknown[] };
}

async function ls(): Promise<Listed[]> {
  return JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as Listed[];
}
const healthy = (name: string) => waitFor(async () => (await ls()).find((v) => v.name === name && v.status === 'healthy'), 180_000, `${name} healthy`);
const HTTPD = ['sh', '-c', 'httpd -p 443 -h /www; exec httpd -f -p 80 -h /www'];
const NC_GET = (host: string, port: number) => ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${host} ${port}`];

test('bridged: published ports answer on the host, the guest reaches host loopback, and stop leaves nothing', async (t) => {
  if (!vmsAvailable(t)) return;
  const before = netSnapshot();
  const [p1, p2] = [await freePort(), await freePort()];
  const host = await loopbackService('hello-from-host-loopback');
  // A cold boot: its container.run comes in beside vm.configure (see host.containers.internal below).
  const vm = spawnFcvm(['podman', 'run', '--name', 'it-br', '--no-snapshot', '--stop-timeout', '2', '--publish', `${p1}:80,127.0.0.1:${p2}:443`, '-p', '127.0.0.1::80', 'localhost/bb', '--', ...HTTPD]);
  try {
    const v = await healthy('it-br');
    assert.equal(v.network.mode, 'bridged');
    assert.equal(v.network.guestIp, '172.30.0.2');
    // healthy means the container started; its second httpd may still be starting.
    const get = (port: number) => waitFor(() => httpGet('127.0.0.1', port).catch(() => undefined), 30_000, `port ${port}`);
    assert.match(await get(p1), /hello from fcvm/);
    assert.match(await get(p2), /hello from fcvm/);
    // -p HOSTIP::GUESTPORT: a free host port, picked at claim and shown by fcvm port.
    const ports = await fcvm(['podman', 'port', 'it-br']);
    const any = /^80\/tcp -> 127\.0\.0\.1:(\d+)$/m.exec(ports.stdout);
    assert.ok(any, ports.stdout + ports.stderr);
    assert.match(await get(Number(any[1])), /hello from fcvm/);
    assert.equal((await fcvm(['port', 'it-br', '443'])).stdout, `127.0.0.1:${p2}\n`);
    const table = (await fcvm(['ls'])).stdout;
    assert.match(table, new RegExp(`it-br .*bridged\\s+172\\.30\\.0\\.2\\s+${p1}->80/tcp,127\\.0\\.0\\.1:${p2}->443/tcp`));
    const r = await fcvm(['exec', 'it-br', '--', ...NC_GET('172.30.0.1', host.port)]);
    assert.match(r.stdout, /hello-from-host-loopback/, r.stderr);
    // podman's name for the host is the host, not the guest the container shares.
    const named = await fcvm(['exec', 'it-br', '--', ...NC_GET('host.containers.internal', host.port)]);
    assert.match(named.stdout, /hello-from-host-loopback/, named.stderr);
    // The container's own host name resolves, to the guest's address (as Docker's does).
    const self = await fcvm(['exec', 'it-br', '--', 'ping', '-c', '1', '-W', '5', 'it-br']);
    assert.match(self.stdout, /PING it-br \(172\.30\.0\.2\)/, self.stderr);
    const during = netSnapshot();
    assert.equal(during.netns, before.netns + 1);
    assert.equal(during.links, before.links + 1);
    assert.ok(during.rules > before.rules);
  } finally {
    vm.kill('SIGTERM');
    await vm;
    host.server.close();
  }
  assert.deepEqual(netSnapshot(), before);
  assertNoLeftovers();
});

test('-P publishes the image\'s EXPOSE and --expose ports on free host ports; inspect shows them as podman does', async (t) => {
  if (!vmsAvailable(t)) return;
  // bb-web: EXPOSE 80, httpd on 80.
  const vm = spawnFcvm(['podman', 'run', '--name', 'it-pall', '--stop-timeout', '2', '-P', '--expose', '8081/udp', 'localhost/bb-web']);
  try {
    await healthy('it-pall');
    const ports = (await fcvm(['port', 'it-pall'])).stdout;
    const web = /^80\/tcp -> 0\.0\.0\.0:(\d+)$/m.exec(ports);
    assert.ok(web, ports);
    assert.match(ports, /^8081\/udp -> 0\.0\.0\.0:\d+$/m);
    const get = (host: string, port: number) => waitFor(() => httpGet(host, port).catch(() => undefined), 30_000, `${host}:${port}`);
    assert.match(await get('127.0.0.1', Number(web[1])), /hello from fcvm/);
    const inspect = (f: string) => fcvm(['inspect', '-f', f, 'it-pall']).then((r) => r.stdout.trim());
    const bindings = JSON.parse(await inspect('{{json .NetworkSettings.Ports}}')) as Record<string, { HostIp: string; HostPort: string }[]>;
    assert.deepEqual(bindings['80/tcp'], [{ HostIp: '', HostPort: web[1] }]);
    // The container's address, as podman users take it from inspect, answers on its ports from the host.
    const ip = await inspect('{{.NetworkSettings.IPAddress}}');
    assert.match(ip, /^10\.200\.\d+\.\d+$/);
    assert.match(await get(ip, 80), /hello from fcvm/);
    assert.equal(await inspect('{{.Config.Image}} {{.State.Status}}'), 'localhost/bb-web running');
  } finally {
    vm.kill('SIGTERM');
    await vm;
  }
  assertNoLeftovers();
});

test('bridged: after SIGKILL of the supervisor the next command reaps namespace, links and rules', async (t) => {
  if (!vmsAvailable(t)) return;
  const before = netSnapshot();
  const port = await freePort();
  const vm = spawnFcvm(['podman', 'run', '--name', 'it-brkill', '--publish', `${port}:80`, 'localhost/bb', '--', ...HTTPD]);
  await healthy('it-brkill');
  vm.kill('SIGKILL');
  await vm;
  assert.notDeepEqual(netSnapshot(), before, 'leftovers exist until the next command');
  await fcvm(['ls']);
  assert.deepEqual(netSnapshot(), before);
  assertNoLeftovers();
});

test('a host port already in use, or already published by another VM, is refused before boot', async (t) => {
  if (!vmsAvailable(t)) return;
  const taken = await loopbackService('busy');
  try {
    const r = await fcvm(['podman', 'run', '--publish', `127.0.0.1:${taken.port}:80`, 'localhost/bb', '--', 'true']);
    assert.equal(r.exitCode, 125);
    assert.match(r.stderr, new RegExp(`^fcvm: invalid --publish ".*${taken.port}:80/tcp": host port ${taken.port}/tcp is already in use \\(a process listens on it\\)\\. Pick another host port`));
  } finally {
    taken.server.close();
  }
  const port = await freePort();
  const vm = spawnFcvm(['podman', 'run', '--name', 'it-owner', '--stop-timeout', '2', '--publish', `${port}:80`, 'localhost/bb', '--', ...HTTPD]);
  try {
    await healthy('it-owner');
    const r = await fcvm(['podman', 'run', '--publish', `${port}:8080`, 'localhost/bb', '--', 'true']);
    assert.equal(r.exitCode, 125);
    assert.match(r.stderr, /is already in use \(published by VM "it-owner"\)/);
  } finally {
    vm.kill('SIGTERM');
    await vm;
  }
  assertNoLeftovers();
});

test('10 VMs started at the same moment get unique addresses', async (t) => {
  if (!vmsAvailable(t)) return;
  const before = netSnapshot();
  const names = Array.from({ length: 10 }, (_, i) => `it-many-${i}`);
  const vms = names.map((n) => spawnFcvm(['podman', 'run', '--name', n, '--mem', '256', '--cpu', '1', 'localhost/bb', '--', 'sleep', '600']));
  try {
    const all = await waitFor(async () => {
      const l = (await ls()).filter((v) => names.includes(v.name) && v.network.hostPath);
      return l.length === 10 ? l : undefined;
    }, 120_000, 'all 10 VMs to have their network');
    for (const key of ['hostPath', 'loopback', 'netns'] as const) {
      assert.equal(new Set(all.map((v) => v.network[key])).size, 10, `unique ${key}`);
    }
  } finally {
    for (const v of vms) v.kill('SIGTERM');
    await Promise.all(vms);
  }
  assert.deepEqual(netSnapshot(), before);
  assertNoLeftovers();
});

test('--health-check polls HTTP through the VM\'s own path: healthy, then unhealthy when the server stops', async (t) => {
  if (!vmsAvailable(t)) return;
  const vm = spawnFcvm(['podman', 'run', '--name', 'it-hc', '--stop-timeout', '2', '--health-check', 'http://localhost:80/', '--health-check-timeout', '2', 'localhost/bb', '--', 'sh', '-c', 'httpd -p 80 -h /www; sleep 600']);
  try {
    await healthy('it-hc');
    const kill = await fcvm(['exec', 'it-hc', '--', 'killall', 'httpd']);
    assert.equal(kill.exitCode, 0, kill.stderr);
    const v = await waitFor(async () => (await ls()).find((x) => x.name === 'it-hc' && x.status === 'unhealthy'), 60_000, 'unhealthy');
    assert.ok(v);
  } finally {
    vm.kill('SIGTERM');
    await vm;
  }
  assertNoLeftovers();
});

test('rootless, as an unprivileged user: publish, host loopback through the gateway, nothing left', async (t) => {
  if (!vmsAvailable(t)) return;
  const { asUser, cli: CLI } = await rootlessUser(t);
  const port = await freePort();  const host = await loopbackService('hello-rootless');
  const vm = asUser(process.execPath, [CLI, 'podman', 'run', '--name', 'it-rl', '--stop-timeout', '2', '--publish', `127.0.0.1:${port}:80`, 'localhost/bb', '--', ...HTTPD]);
  const alive = endsEarly('the user\'s podman run', vm);
  let supervisorPid = 0;
  try {
    supervisorPid = (await waitFor(async () => {
      alive();
      const l = await asUser(process.execPath, [CLI, 'ls', '--json']);
      return (JSON.parse(String(l.stdout) || '[]') as Listed[]).find((v) => v.name === 'it-rl' && v.status === 'healthy' && v.network.mode === 'rootless');
    }, 180_000, 'the rootless VM')).pid;
    assert.match(await waitFor(() => httpGet('127.0.0.1', port).catch(() => undefined), 30_000, 'the published port'), /hello from fcvm/);
    const r = await asUser(process.execPath, [CLI, 'exec', 'it-rl', '--', ...NC_GET('10.0.2.2', host.port)]);
    assert.match(String(r.stdout), /hello-rootless/, String(r.stderr));
  } finally {
    // runuser does not pass signals on: signal the user's fcvm itself, as the user could.
    if (supervisorPid) process.kill(supervisorPid, 'SIGTERM');
    else vm.kill('SIGKILL');
    await vm;
    host.server.close();
  }
  assertUserLeftNothing();
});
