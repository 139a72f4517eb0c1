import { test } from 'node:test';
import assert from 'node:assert/strict';
import { humanDuration, podmanInspectFields, podmanPsJson, podmanPsRow, podmanState, podmanStatusText, type InspectSource } from './podman-view.js';
import type { VmListing } from '../state/list.js';
import { parseTemplate } from '../util/go-template.js';

test('humanDuration words spans as podman ps does', () => {
  const cases: [number, string][] = [
    [0.4, 'Less than a second'], [1, '1 second'], [59, '59 seconds'], [60, 'About a minute'], [119, 'About a minute'],
    [120, '2 minutes'], [3599, '59 minutes'], [3600, 'About an hour'], [7200, '2 hours'], [47 * 3600, '47 hours'],
    [48 * 3600, '2 days'], [15 * 86400, '2 weeks'], [70 * 86400, '2 months'], [800 * 86400, '2 years'],
  ];
  for (const [s, want] of cases) assert.equal(humanDuration(s), want, `${s} s`);
});

const listing = (over: Partial<VmListing>): VmListing => ({
  name: 'web', pid: 1, vmmPid: 2, status: 'running', image: 'localhost/bb', hypervisor: 'qemu', accel: 'tcg', vcpus: 2, memoryMiB: 512,
  createdAt: '2026-01-01T00:00:00.000Z', uptimeSeconds: 0, exitCode: undefined, clone: undefined, jail: undefined, labels: {}, volumes: undefined,
  transitions: [{ status: 'starting', at: '2026-01-01T00:00:00.000Z' }, { status: 'running', at: '2026-01-01T00:00:10.000Z' }],
  network: { mode: 'bridged', loopback: '127.201.0.1', publish: [] },
  ...over,
});

test('podmanStatusText: Up, with health; Exited with its code; Created', () => {
  const now = Date.parse('2026-01-01T00:05:10.000Z');
  assert.equal(podmanStatusText(listing({}), now), 'Up 5 minutes (starting)');
  const noCheck = [{ status: 'starting' as const, at: '2026-01-01T00:00:00.000Z' }, { status: 'healthy' as const, at: '2026-01-01T00:00:10.000Z' }];
  assert.equal(podmanStatusText(listing({ status: 'healthy', transitions: noCheck }), now), 'Up 5 minutes');
  assert.equal(podmanStatusText(listing({ status: 'healthy', transitions: [...listing({}).transitions, { status: 'healthy', at: '2026-01-01T00:00:12.000Z' }] }), now), 'Up 5 minutes (healthy)');
  assert.equal(podmanStatusText(listing({ status: 'unhealthy' }), now), 'Up 5 minutes (unhealthy)');
  assert.equal(podmanStatusText(listing({ status: 'starting' }), now), 'Created');
  const ended = listing({ status: 'stopped', exitCode: 3, transitions: [{ status: 'running', at: '2026-01-01T00:00:10.000Z' }, { status: 'stopped', at: '2026-01-01T00:05:08.000Z' }] });
  assert.equal(podmanStatusText(ended, now), 'Exited (3) 2 seconds ago');
});

test('podmanInspectFields: the templates podman users write', () => {
  const s: InspectSource = {
    id: 'abc', name: 'web', image: 'localhost/bb-web', createdAt: '2026-01-01T00:00:00.000Z', memoryMiB: 512, vcpus: 2,
    labels: { tier: 'front' },
    network: { mode: 'bridged', guestIp: '172.30.0.2', hostPath: '10.200.0.6', loopback: '127.201.0.1', publish: [{ hostIp: '0.0.0.0', hostPort: 8080, guestPort: 80, proto: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 5353, guestPort: 53, proto: 'udp' }] },
    volumes: [{ host: '/srv/html', guest: '/www', readOnly: true }],
    plan: { command: ['httpd', '-f'], envNames: ['A'], init: false, tty: false, interactive: false, privileged: false, pull: { policy: 'missing', tlsVerify: true } },
  };
  const dot = podmanInspectFields(s);
  const r = (t: string) => parseTemplate(t).render(dot);
  assert.equal(r('{{.NetworkSettings.IPAddress}}'), '10.200.0.6');
  assert.equal(r('{{json .NetworkSettings.Ports}}'), '{"80/tcp":[{"HostIp":"","HostPort":"8080"}],"53/udp":[{"HostIp":"127.0.0.1","HostPort":"5353"}]}');
  assert.equal(r('{{json .Config.Cmd}} {{.Config.Image}} {{.Config.Labels.tier}} {{.Config.Labels.none}}'), '["httpd","-f"] localhost/bb-web front <no value>');
  assert.equal(r('{{range .Mounts}}{{.Source}}->{{.Destination}} {{.RW}}{{end}}'), '/srv/html->/www false');
  assert.equal(r('{{.HostConfig.Memory}} {{.Config.Hostname}}'), '536870912 web');
  // --stop-signal as podman shows it; none given, none shown (the image's is the guest podman's).
  assert.equal(r('[{{.Config.StopSignal}}]'), '[]');
  for (const [word, shown] of [['SIGINT', 'SIGINT'], ['quit', 'SIGQUIT'], ['9', 'SIGKILL']]) {
    const withSignal = podmanInspectFields({ ...s, plan: { ...s.plan!, podmanOptions: ['--init-path=/x', `--stop-signal=${word}`] } });
    assert.equal(parseTemplate('{{.Config.StopSignal}}').render(withSignal), shown);
  }
  const rootless = podmanInspectFields({ ...s, network: { ...s.network, mode: 'rootless' } });
  assert.equal(parseTemplate('[{{.NetworkSettings.IPAddress}}]').render(rootless), '[]');
});

const inspectSource = (): InspectSource => ({
  id: 'abc', name: 'web', image: 'localhost/bb', createdAt: '2026-01-01T00:00:00.000Z', memoryMiB: 512, vcpus: 2, labels: {},
  network: { mode: 'rootless', loopback: '127.201.0.1', publish: [] }, volumes: undefined, plan: undefined,
});

test('podman ps --format json keys, .Command, and Health as podman says it', () => {
  const now = Date.parse('2026-01-01T00:05:10.000Z');
  const l = listing({ command: ['httpd', '-f'], labels: { a: 'b' }, network: { mode: 'bridged', loopback: '127.201.0.1', publish: [{ hostIp: '0.0.0.0', hostPort: 8080, guestPort: 80, proto: 'tcp' }] } });
  const j = podmanPsJson(l, now);
  assert.deepEqual([j.Id, j.Names, j.Image, j.Command, j.State, j.Exited, j.ExitCode, j.Pid, j.Labels, j.Created], ['web', ['web'], 'localhost/bb', ['httpd', '-f'], 'running', false, 0, 2, { a: 'b' }, 1767225600]);
  assert.deepEqual(j.Ports, [{ host_ip: '', container_port: 80, host_port: 8080, range: 1, protocol: 'tcp' }]);
  assert.equal(j.Status, 'Up 5 minutes (starting)');
  assert.equal(parseTemplate('{{.ID}} {{.Command}}').render(podmanPsRow(l)), 'web httpd -f');
  // Health: "" without a check, "starting" until the first passes.
  const health = (over: Partial<VmListing>) => (podmanState(listing(over)).Health as { Status: string }).Status;
  assert.equal(health({ status: 'healthy', transitions: [{ status: 'starting', at: '2026-01-01T00:00:00.000Z' }, { status: 'healthy', at: '2026-01-01T00:00:01.000Z' }] }), '');
  assert.equal(health({}), 'starting');
  assert.equal(health({ status: 'healthy' }), 'healthy');
  assert.equal(podmanInspectFields({ ...inspectSource(), name: 'db' }).Id, 'db');
});
