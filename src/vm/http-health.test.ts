import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { probeOnce } from './http-health.js';

/** A raw TCP server on loopback that answers each connection with `answer`; counts open sockets. */
async function rawServer(answer: (s: Socket) => void): Promise<{ url: URL; open: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', () => answer(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: new URL(`http://web.test:${port}/health`),
    open: () => sockets.size,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

test('probeOnce: the status decides, and the connection closes at once though the guest never ends its body', async () => {
  const timers: NodeJS.Timeout[] = [];
  const srv = await rawServer((s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n');
    timers.push(setInterval(() => s.writable && s.write('x'.repeat(1024)), 20));
  });
  try {
    for (let i = 0; i < 5; i++) assert.equal(await probeOnce(srv.url, '127.0.0.1', 2000), true);
    const until = Date.now() + 2000;
    while (srv.open() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(srv.open(), 0, 'no probe connection stays open');
  } finally {
    for (const t of timers) clearInterval(t);
    await srv.close();
  }
});

test('probeOnce: a guest that trickles its headers is cut at the timeout; an error status is a failure', async () => {
  const timers: NodeJS.Timeout[] = [];
  const slow = await rawServer((s) => {
    const head = Buffer.from('HTTP/1.1 200 OK\r\nX-Slow: ' + 'y'.repeat(200) + '\r\n\r\n');
    let i = 0;
    timers.push(setInterval(() => s.writable && i < head.length && s.write(head.subarray(i, ++i)), 50));
  });
  const bad = await rawServer((s) => s.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n'));
  try {
    const t0 = Date.now();
    assert.equal(await probeOnce(slow.url, '127.0.0.1', 500), false);
    assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms`);
    assert.equal(await probeOnce(bad.url, '127.0.0.1', 2000), false);
  } finally {
    for (const t of timers) clearInterval(t);
    await slow.close();
    await bad.close();
  }
});
