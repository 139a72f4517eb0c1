import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bridgedAddresses, loopbackFor, macFor } from './addressing.js';
import { exposedFromImage, formatMappings, parseExpose, parsePublish, publishAll } from './publish.js';
import { assertPortsFree, assignHostPorts, publishedByOther } from './ports.js';
import { deleteForm, hostRules, namespaceRules, staleRules } from './rules.js';

test('publish specs: host ip, ports, protocol, comma lists', () => {
  assert.deepEqual(parsePublish(['8080:80,127.0.0.1:8443:443/tcp', '5353:53/udp']), [
    { hostIp: '0.0.0.0', hostPort: 8080, guestPort: 80, proto: 'tcp' },
    { hostIp: '127.0.0.1', hostPort: 8443, guestPort: 443, proto: 'tcp' },
    { hostIp: '0.0.0.0', hostPort: 5353, guestPort: 53, proto: 'udp' },
  ]);
  assert.throws(() => parsePublish(['1:2:3:4']), /expected \[HOSTIP:\]\[HOSTPORT:\]GUESTPORT/);
  assert.throws(() => parsePublish(['70000:80']), /outside 1-65535/);
  assert.throws(() => parsePublish(['x:80']), /"x" is not a port number/);
  assert.throws(() => parsePublish(['1.2.3:80:80']), /not an IPv4 address/);
  assert.throws(() => parsePublish(['8080:80/sctp']), /unknown protocol "sctp"/);
  assert.throws(() => parsePublish(['8080:80', '127.0.0.1:8080:81']), /published twice/);
});

test('each index gets its own /30, veth name and loopback; the guest address is shared', () => {
  const a = bridgedAddresses(0, 'ab12cd-1-2');
  const b = bridgedAddresses(65, 'ef34ab-1-2');
  assert.equal(a.hostVethIp, '10.200.0.1');
  assert.equal(a.nsVethIp, '10.200.0.2');
  assert.equal(b.hostVethIp, '10.200.1.5');
  assert.equal(a.guestIp, b.guestIp);
  assert.equal(a.hostVeth, 'fcvmab12cd');
  assert.ok(a.hostVeth.length <= 15);
  assert.notEqual(loopbackFor(0), loopbackFor(1));
  assert.equal(loopbackFor(255), '127.201.1.0');
  assert.match(macFor('ab12cd-1-2'), /^52:54:00:ab:12:cd$/);
  assert.throws(() => bridgedAddresses(16384, 'x'), /out of range/);
});

test('no host port (80, HOSTIP::80, a guest range) means any free one, picked at claim: never a clash', async () => {
  assert.deepEqual(parsePublish(['80', '127.0.0.1::53/udp', '9000-9001']).map((m) => [m.hostIp, m.hostPort, m.guestPort, m.proto]), [
    ['0.0.0.0', 0, 80, 'tcp'], ['127.0.0.1', 0, 53, 'udp'], ['0.0.0.0', 0, 9000, 'tcp'], ['0.0.0.0', 0, 9001, 'tcp'],
  ]);
  const wanted = parsePublish(['80,81,127.0.0.1::53/udp,8080:82']);
  const other = parsePublish(['40000:80']);
  const got = await assignHostPorts(wanted, other);
  assert.equal(got.length, 4);
  assert.deepEqual(got.map((m) => m.guestPort), [80, 81, 53, 82]);
  assert.equal(got[3]!.hostPort, 8080, 'a given host port stays');
  for (const m of got.slice(0, 3)) assert.ok(m.hostPort >= 1024 && m.hostPort !== 40000, String(m.hostPort));
  assert.notEqual(got[0]!.hostPort, got[1]!.hostPort);
});

test('a host address that is not this host\'s is refused in one line, as is any bind failure', async () => {
  await assert.rejects(assertPortsFree(parsePublish(['192.0.2.5:18000:80'])), /invalid --publish "192\.0\.2\.5:18000:80\/tcp": 192\.0\.2\.5 is not an address of this host/);
  await assert.rejects(assignHostPorts(parsePublish(['192.0.2.5::80']), []), /cannot listen on 192\.0\.2\.5 \(EADDRNOTAVAIL\)/);
});

test('a run of consecutive ports is listed as one range, as podman lists it', () => {
  const ms = parsePublish(['8000-8002:9000-9002', '127.0.0.1:8003:9003', '7000:70/udp', '7001:71/udp', '5000:50']);
  assert.deepEqual(formatMappings(ms), ['8000-8002->9000-9002/tcp', '127.0.0.1:8003->9003/tcp', '7000-7001->70-71/udp', '5000->50/tcp']);
  assert.deepEqual(formatMappings(ms.slice(6), '0.0.0.0'), ['0.0.0.0:5000->50/tcp']);
});

test('publish ranges map port for port, as podman\'s do', () => {
  assert.deepEqual(parsePublish(['127.0.0.1:8000-8002:9000-9002/udp']).map((m) => [m.hostIp, m.hostPort, m.guestPort, m.proto]), [
    ['127.0.0.1', 8000, 9000, 'udp'], ['127.0.0.1', 8001, 9001, 'udp'], ['127.0.0.1', 8002, 9002, 'udp'],
  ]);
  assert.deepEqual(parsePublish(['8080-8081:80-81,9000:90']).map((m) => `${m.hostPort}:${m.guestPort}`), ['8080:80', '8081:81', '9000:90']);
  assert.throws(() => parsePublish(['8000-8002:80-81']), /3 host ports for 2 guest ports/);
  assert.throws(() => parsePublish(['8002-8000:80-82']), /the range 8002-8000 ends before it starts/);
  assert.throws(() => parsePublish(['1-65535:1-65535']), /more than 1024 ports/);
  assert.throws(() => parsePublish(['8000-8001:90-91', '8001:80']), /host port 8001\/tcp is published twice/);
  assert.throws(() => parsePublish(['8000-x:80']), /"8000-x" is not a port number/);
});

test('host rules are labelled with the VM and publish DNATs to the namespace', () => {
  const a = bridgedAddresses(1, 'ab12cd-1-2');
  const rules = hostRules(a, parsePublish(['8080:80']), 'ab12cd-1-2');
  assert.ok(rules.every((r) => r.args.join(' ').includes('--comment fcvm:ab12cd-1-2')));
  const dnat = rules.filter((r) => r.args.includes('--dport'));
  assert.deepEqual(dnat.map((r) => r.args[1]), ['PREROUTING', 'OUTPUT']);
  assert.ok(dnat.every((r) => r.args.includes('10.200.0.6:80')));
  assert.ok(rules.some((r) => r.args.includes('10.200.0.4/30')));
  assert.deepEqual(deleteForm(rules[0]!).args.slice(0, 2), ['-D', 'POSTROUTING']);
  assert.ok(namespaceRules(a).some((r) => r.args.includes(a.guestIp)));
});

test('stale rules are found in iptables-save output by their comment', () => {
  const save = [
    '*nat',
    '-A OUTPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -m comment --comment "fcvm:dead-1-2" -j DNAT --to-destination 10.200.0.2:80',
    '-A OUTPUT -m comment --comment fcvm:live-1-2 -j ACCEPT',
    'COMMIT',
    '*filter',
    '-A FORWARD -i fcvmdead -m comment --comment fcvm:dead-1-2 -j ACCEPT',
    'COMMIT',
  ].join('\n');
  const stale = staleRules(save, new Set(['live-1-2']));
  assert.equal(stale.length, 2);
  assert.equal(stale[0]!.table, 'nat');
  assert.deepEqual(stale[0]!.args.slice(0, 3), ['-D', 'OUTPUT', '-p']);
  assert.ok(stale[0]!.args.includes('fcvm:dead-1-2'));
  assert.equal(stale[1]!.table, 'filter');
});

test('a port another VM publishes clashes; the VM itself and other ports do not', () => {
  const vm = (name: string, publish: string[]) => ({ name, network: { publish: parsePublish(publish) } });
  const live = [vm('a', ['8080:80']), vm('b', ['127.0.0.1:9090:90/udp'])];
  assert.deepEqual(publishedByOther(live, 'c', parsePublish(['127.0.0.1:8080:81'])), { mapping: parsePublish(['127.0.0.1:8080:81'])[0], by: 'a' });
  assert.equal(publishedByOther(live, 'a', parsePublish(['8080:80'])), undefined);
  assert.equal(publishedByOther(live, 'c', parsePublish(['9090:90'])), undefined);
  assert.equal(publishedByOther(live, 'c', parsePublish(['9090:90/udp']))?.by, 'b');
});

test('-P: EXPOSE and --expose ports get any free host port, unless --publish names them', () => {
  assert.deepEqual(parseExpose(['8080', '5353/udp,9000-9001']), [
    { port: 8080, proto: 'tcp' }, { port: 5353, proto: 'udp' }, { port: 9000, proto: 'tcp' }, { port: 9001, proto: 'tcp' },
  ]);
  assert.throws(() => parseExpose(['80/sctp']), /invalid --expose "80\/sctp": unknown protocol "sctp"/);
  assert.throws(() => parseExpose(['99999']), /invalid --expose "99999": port 99999 is outside 1-65535/);
  assert.deepEqual(exposedFromImage(['80/tcp', '53/udp', '8443', 'bogus', '70000/tcp']), [{ port: 80, proto: 'tcp' }, { port: 53, proto: 'udp' }, { port: 8443, proto: 'tcp' }]);
  const given = parsePublish(['8080:80']);
  assert.deepEqual(publishAll(given, [{ port: 80, proto: 'tcp' }, { port: 80, proto: 'udp' }, { port: 443, proto: 'tcp' }]), [
    { hostIp: '0.0.0.0', hostPort: 8080, guestPort: 80, proto: 'tcp' },
    { hostIp: '0.0.0.0', hostPort: 0, guestPort: 80, proto: 'udp' },
    { hostIp: '0.0.0.0', hostPort: 0, guestPort: 443, proto: 'tcp' },
  ]);
});
