/**
 * bench/net: HTTP request rate through a published port, against the same requests made
 * inside the guest to its own loopback, in one run. The server is busybox httpd in the
 * container; the client is the same small Node program on the host and in the guest
 * (CONCURRENCY connections, one request each, for DURATION seconds).
 *
 *   node dist/bench/net.js [--seconds 10] [--concurrency 4] [--modes bridged,rootless] [--json out.json]
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { timedRun } from './timed-run.js';

const { values } = parseArgs({ options: {
  seconds: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '4' },
  modes: { type: 'string', default: 'bridged,rootless' }, json: { type: 'string' },
} });
const cli = resolve('dist/fcvm.mjs');

/** The load client, as source: it runs under the host's Node and the guest's Node 18. */
const CLIENT = `
const http = require('http');
const [host, port, seconds, conc] = process.argv.slice(1);
const end = Date.now() + Number(seconds) * 1000;
let ok = 0, failed = 0; const errors = {};
const one = () => new Promise((res) => {
  const req = http.get({ host, port: Number(port), path: '/', agent: false }, (r) => { r.resume(); r.on('end', () => { r.statusCode === 200 ? ok++ : failed++; res(); }); });
  req.on('error', (e) => { failed++; errors[e.code] = (errors[e.code] || 0) + 1; res(); });
});
const worker = async () => { while (Date.now() < end) await one(); };
const t0 = Date.now();
Promise.all(Array.from({ length: Number(conc) }, worker)).then(() => console.log(JSON.stringify({ ok, failed, errors, seconds: (Date.now() - t0) / 1000 })));
`;


async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const rate = (o: { ok: number; seconds: number }) => o.ok / o.seconds;
const results: Record<string, unknown> = {};
for (const mode of values.modes!.split(',')) {
  const name = `bench-net-${mode}-${process.pid}`;
  const port = await freePort();
  const vm = spawn(process.execPath, [cli, 'podman', 'run', '--name', name, '--network', mode, '--stop-timeout', '1', '--publish', `127.0.0.1:${port}:80`, 'localhost/bb', '--', 'httpd', '-f', '-p', '80', '-h', '/www'], { stdio: 'ignore' });
  try {
    for (let i = 0; ; i++) {
      const ls = JSON.parse((await timedRun(process.execPath, [cli, 'ls', '--json'])).out) as { name: string; status: string }[];
      if (ls.some((v) => v.name === name && v.status === 'healthy')) break;
      if (i > 600) throw new Error(`VM for ${mode} did not come up`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // Healthy means the container started; wait until httpd answers before measuring.
    for (let i = 0; (await timedRun(process.execPath, ['-e', CLIENT, '127.0.0.1', String(port), '0.2', '1'])).out.includes('"ok":0'); i++) {
      if (i > 100) throw new Error('httpd never answered');
    }
    const host = await timedRun(process.execPath, ['-e', CLIENT, '127.0.0.1', String(port), values.seconds!, values.concurrency!]);
    const guest = await timedRun(process.execPath, [cli, 'exec', name, '--vm', '--', 'node', '-e', CLIENT, '127.0.0.1', '80', values.seconds!, values.concurrency!]);
    const h = JSON.parse(host.out.trim().split('\n').pop()!);
    const g = JSON.parse(guest.out.trim().split('\n').pop()!);
    results[mode] = { publishedPort: { ...h, reqPerSec: Number(rate(h).toFixed(1)) }, inGuestLoopback: { ...g, reqPerSec: Number(rate(g).toFixed(1)) }, ratio: Number((rate(h) / rate(g)).toFixed(3)) };
    console.log(`${mode}: published port ${rate(h).toFixed(1)} req/s (${h.failed} failed ${JSON.stringify(h.errors)}), in-guest loopback ${rate(g).toFixed(1)} req/s (${g.failed} failed), ratio ${(rate(h) / rate(g)).toFixed(2)}`);
  } finally {
    vm.kill('SIGTERM');
    await new Promise((r) => vm.on('exit', r));
  }
}
if (values.json) writeFileSync(values.json, JSON.stringify({ bench: 'net', seconds: Number(values.seconds), concurrency: Number(values.concurrency), results }, null, 2) + '\n');
