import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveUnixSocket } from './unix-server.js';

test('a run-directory socket server hands over each client and hangs up on them at close', { timeout: 10_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-unix-server-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 's.sock');
  const served: Socket[] = [];
  const server = await serveUnixSocket(path, (sock) => {
    served.push(sock);
    sock.write('hello');
  });
  const client = connect(path);
  const greeting = await new Promise<string>((resolve) => client.once('data', (d) => resolve(d.toString())));
  assert.equal(greeting, 'hello');
  assert.equal(served.length, 1);
  await assert.rejects(serveUnixSocket(path, () => {}), { code: 'EADDRINUSE' }, 'a socket in use is refused, not replaced');
  // The client never hangs up itself: close() must not wait for it.
  const hungUp = new Promise<void>((resolve) => client.once('close', () => resolve()));
  await server.close();
  await hungUp;
  assert.equal(existsSync(path), false, 'the socket file goes with the server');
});
