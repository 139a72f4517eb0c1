import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SESSION_SYNC } from '../protocol/session-sync.js';
import { socketTransport, type Transport } from '../protocol/transport.js';
import { openResumable } from '../protocol/resumable-link.js';
import { VsockLink, type Listen } from './vsock-link.js';

// The session logic over an AF_UNIX listener: this host has no vsock loopback; the
// AF_VSOCK listener itself is tested in a real guest (test/integration/vsock-guest).
let dir = '';
before(() => (dir = mkdtempSync(join(tmpdir(), 'fcvm-vsocklink-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

const unixListen = (path: string): Listen => (_port, onConnection) => {
  const server = createServer(onConnection);
  server.listen(path);
  return { close: () => server.close() };
};

/** A host session: a resumable stream over a Unix connection, as over hybrid vsock. */
async function dial(path: string): Promise<{ write(d: Uint8Array | string): void; once(cb: (d: Buffer) => void): void; on(cb: (d: Buffer) => void): void; destroy(): void }> {
  const t = await openResumable({
    connect: () => new Promise((resolve) => {
      const s: Socket = connect(path, () => resolve(socketTransport(s)));
    }),
    alive: () => true,
    resumeTimeoutMs: 200,
  });
  const listeners: ((d: Buffer) => void)[] = [];
  t.onData((c) => listeners.splice(0).forEach((l) => l(Buffer.from(c))));
  return {
    write: (d) => t.write(typeof d === 'string' ? Buffer.from(d) : d),
    once: (cb) => listeners.push(cb),
    on: (cb) => {
      const again = (d: Buffer) => (cb(d), listeners.push(again));
      listeners.push(again);
    },
    destroy: () => t.close(),
  };
}

function sessions(): { got: { t: Transport; data: Buffer[] }[]; on: (t: Transport) => void } {
  const got: { t: Transport; data: Buffer[] }[] = [];
  return {
    got,
    on: (t) => {
      const entry = { t, data: [] as Buffer[] };
      t.onData((c) => entry.data.push(Buffer.from(c)));
      got.push(entry);
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 50));

test('each host is a session of its own; closing it ends only that session', async () => {
  const path = join(dir, 'a.sock');
  const s = sessions();
  const link = new VsockLink(10240, s.on, unixListen(path));
  const a = await dial(path);
  a.write('one');
  await settle();
  const b = await dial(path);
  b.write('two');
  await settle();
  assert.equal(s.got.length, 2);
  assert.equal(Buffer.concat(s.got[0]!.data).toString(), 'one');
  assert.equal(Buffer.concat(s.got[1]!.data).toString(), 'two');
  s.got[1]!.t.write(Buffer.from('back'));
  const back = await new Promise<string>((r) => b.once((d) => r(String(d))));
  assert.equal(back, 'back');
  a.destroy();
  b.destroy();
  link.stop();
});

test('armed for a snapshot: the restored host\'s SYNC is answered with SYNC, and the session starts after it', async () => {
  const path = join(dir, 'b.sock');
  const s = sessions();
  const link = new VsockLink(10240, s.on, unixListen(path));
  link.arm();
  const c = await dial(path);
  const answer: Buffer[] = [];
  c.on((d) => answer.push(d));
  // SYNC split across writes, with the first frame of the new session right behind it.
  c.write(SESSION_SYNC.subarray(0, 5));
  await settle();
  assert.equal(s.got.length, 0, 'no session before SYNC is complete');
  c.write(Buffer.concat([SESSION_SYNC.subarray(5), Buffer.from('hello')]));
  await settle();
  assert.deepEqual(Buffer.concat(answer), SESSION_SYNC);
  assert.equal(s.got.length, 1);
  assert.equal(Buffer.concat(s.got[0]!.data).toString(), 'hello');
  // Disarmed by the SYNC: the next connection is a plain session again.
  const d = await dial(path);
  d.write('plain');
  await settle();
  assert.equal(Buffer.concat(s.got[1]!.data).toString(), 'plain');
  c.destroy();
  d.destroy();
  link.stop();
});
