import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '../../protocol/connection.js';
import { FEATURES } from '../../protocol/messages.js';
import { socketTransport } from '../../protocol/transport.js';
import { connectHybridVsock } from './hybrid-vsock.js';

/**
 * The host end of Firecracker's hybrid vsock as docs/vsock.md describes it: on the Unix
 * socket, read "CONNECT <port>\n"; if something listens on that guest port, answer
 * "OK <host port>\n" and carry bytes; if not, close the connection without an answer.
 * `guest` decides what listens; its handler plays the guest's end.
 */
function vsockPeer(path: string, guest: Map<number, (s: Socket) => void>, greeting = ''): Promise<{ server: Server; lines: string[] }> {
  const lines: string[] = [];
  const server = createServer((s) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      const line = buf.slice(0, nl);
      lines.push(line);
      const port = Number(line.match(/^CONNECT (\d+)$/)?.[1]);
      const handler = guest.get(port);
      if (!handler) return void s.destroy();
      // The guest's first bytes may share a segment with the answer.
      s.write(`OK 1073741824\n${greeting}`);
      handler(s);
    };
    s.on('data', onData);
    s.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(path, () => resolve({ server, lines })));
}

const echo = (s: Socket) => s.on('data', (d) => s.write(d));

describe('the hybrid vsock transport, against a peer that speaks the documented handshake', () => {
  let dir = '';
  let n = 0;
  const servers: Server[] = [];
  const path = () => join(dir, `v${++n}.sock`);
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fcvm-hvsock-'));
  });
  after(() => {
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('CONNECT, OK, then only the guest\'s bytes, including those behind the OK line', async () => {
    const p = path();
    const { server, lines } = await vsockPeer(p, new Map([[5000, echo]]), 'hello');
    servers.push(server);
    const sock = await connectHybridVsock(p, 5000, { timeoutMs: 2000, alive: () => true });
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.resume();
    sock.write(' world');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(Buffer.concat(got).toString(), 'hello world');
    assert.deepEqual(lines, ['CONNECT 5000']);
    sock.destroy();
  });

  test('a guest that starts listening late, and a socket that appears late, are waited for', async () => {
    const p = path();
    const guest = new Map<number, (s: Socket) => void>();
    setTimeout(() => void vsockPeer(p, guest).then(({ server }) => servers.push(server)), 100);
    setTimeout(() => guest.set(5001, echo), 250);
    const t0 = Date.now();
    const sock = await connectHybridVsock(p, 5001, { timeoutMs: 5000, alive: () => true });
    assert.ok(Date.now() - t0 >= 240);
    sock.resume();
    sock.destroy();
  });

  test('the host protocol runs over it: hello and a request to an agent on the guest port', async () => {
    const p = path();
    const { server } = await vsockPeer(p, new Map([[5002, (s) => {
      const agent = new Connection(socketTransport(s), { role: 'agent', features: FEATURES, bootId: 'boot-1' });
      agent.onRequest((method) => ({ method }));
      void agent.handshake().catch(() => {});
    }]]));
    servers.push(server);
    const sock = await connectHybridVsock(p, 5002, { timeoutMs: 2000, alive: () => true });
    const host = new Connection(socketTransport(sock), { role: 'host', features: FEATURES });
    sock.resume();
    await host.handshake(2000);
    assert.deepEqual(await host.request('ping', {}), { method: 'ping' });
    host.close();
  });

  test('an answer other than "OK <port>" is an error at once; silence ends at the timeout; a dead VMM stops the retries', async () => {
    const p = path();
    const odd = createServer((s) => s.once('data', () => s.write('ERR no such thing\n')));
    servers.push(odd);
    await new Promise<void>((r) => odd.listen(p, () => r()));
    const t0 = Date.now();
    await assert.rejects(connectHybridVsock(p, 5000, { timeoutMs: 5000, alive: () => true }), /answered "ERR no such thing" instead of "OK <port>"/);
    assert.ok(Date.now() - t0 < 1000, 'not retried');

    const q = path();
    const { server } = await vsockPeer(q, new Map());
    servers.push(server);
    await assert.rejects(connectHybridVsock(q, 5003, { timeoutMs: 300, alive: () => true }), /nothing listens on guest vsock port 5003/);
    let alive = true;
    setTimeout(() => (alive = false), 100);
    const t1 = Date.now();
    await assert.rejects(connectHybridVsock(q, 5003, { timeoutMs: 10_000, alive: () => alive }), /nothing listens/);
    assert.ok(Date.now() - t1 < 1000);
  });
});
