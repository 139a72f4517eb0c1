import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CleanupStack } from '../util/cleanup-stack.js';
import { which } from '../util/exec.js';
import { GATEWAY_MAC } from './addressing.js';
import { nsenterArgs, ROOTLESS_TAP, rootlessRules, setupRootlessTap } from './rootless-tap.js';

const free = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const port = (s.address() as { port: number }).port;
    s.close(() => resolve(port));
  });
});

test('rules: NAT out through slirp4netns, the gateway leads to the host\'s loopback, published ports go to the guest', () => {
  const rules = rootlessRules([{ hostIp: '0.0.0.0', hostPort: 8080, guestPort: 80, proto: 'tcp' }], [9000]);
  const lines = rules.map((r) => r.args.join(' '));
  assert.ok(lines.includes('-A POSTROUTING -o slirp0 -j MASQUERADE'));
  assert.ok(lines.includes('-A PREROUTING -i tap0 -d 172.30.0.1 -j DNAT --to-destination 10.0.2.2'));
  assert.ok(lines.includes('-A PREROUTING -i slirp0 -p tcp --dport 80 -j DNAT --to-destination 172.30.0.2:80'));
  assert.ok(lines.includes('-A PREROUTING -i slirp0 -p tcp --dport 9000 -j DNAT --to-destination 172.30.0.2:9000'));
});

test('a user+network namespace holds the TAP, slirp4netns gives it the host, and published ports reach the guest', async (t) => {
  // /dev/net/tun is 0600 on these hosts, so root plays the user here (in its own user
  // namespace all the same); on Debian's defaults (0666) any user can.
  const why = process.getuid?.() !== 0 ? 'needs root here (/dev/net/tun is 0600)' : !(await which('slirp4netns')) ? 'needs slirp4netns' : undefined;
  if (why) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: ${why} ***\n`);
    return t.skip(why);
  }
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-rootless-'));
  const cleanup = new CleanupStack();
  const host = createServer((s) => s.end('host says hi'));
  try {
    await new Promise<void>((r) => host.listen(0, '127.0.0.1', () => r()));
    const hostPort = (host.address() as { port: number }).port;
    const published = await free();
    const r = await setupRootlessTap({ runDir: dir, publish: [{ hostIp: '127.0.0.1', hostPort: published, guestPort: 8080, proto: 'tcp' }], extra: [] }, cleanup);
    const ns = nsenterArgs(r.nsPid);
    const inNs = (...argv: string[]) => execFileSync(ns[0]!, [...ns.slice(1), ...argv], { encoding: 'utf8' });
    const links = inNs('ip', '-br', 'link');
    assert.match(links, new RegExp(`^tap0\\s+\\S+\\s+${GATEWAY_MAC}`, 'm'));
    assert.match(inNs('ip', '-br', 'addr'), /^slirp0\s+\S+\s+10\.0\.2\.100\/24/m);

    // Out: from the namespace to the host's loopback, through slirp4netns (async: the
    // host's listener is in this process).
    const out = await new Promise<string>((resolve, reject) => execFile(ns[0]!, [...ns.slice(1), process.execPath, '-e',
      `require('net').connect(${hostPort}, '${ROOTLESS_TAP.hostLoopback}').on('data', (d) => process.stdout.write(d))`], { timeout: 10_000 }, (e, stdout) => (e ? reject(e) : resolve(stdout))));
    assert.equal(out, 'host says hi');

    // In: a listener on the guest's address stands in for the guest behind the TAP.
    inNs('ip', 'addr', 'add', `${ROOTLESS_TAP.guestIp}/32`, 'dev', 'lo');
    const guest = spawn(ns[0]!, [...ns.slice(1), process.execPath, '-e', `require('net').createServer((s) => s.end('guest says hi')).listen(8080, '${ROOTLESS_TAP.guestIp}', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanup.push('stop the stand-in guest', () => void guest.kill('SIGKILL'));
    await new Promise((res) => guest.stdout.once('data', res));
    const answer = await new Promise<string>((resolve, reject) => {
      let text = '';
      connect(published, '127.0.0.1').on('data', (d) => (text += d)).on('end', () => resolve(text)).on('error', reject);
    });
    assert.equal(answer, 'guest says hi');
  } finally {
    await cleanup.run(() => {});
    host.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(dir) || /^slirp4netns .*slirp4netns\.sock/.test(l));
  assert.deepEqual(left, [], 'slirp4netns and the namespace holder are gone');
});
