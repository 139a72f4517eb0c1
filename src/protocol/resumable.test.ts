import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from './connection.js';
import { FEATURES } from './messages.js';
import { openResumable, ResumableListener } from './resumable-link.js';
import type { Transport } from './transport.js';

/**
 * A link that can be cut like a reset vsock connection: whatever was written and not
 * yet delivered is lost, and both ends see the close.
 */
function lossyPair(): { a: Transport; b: Transport; cut: () => void } {
  type End = { data?: (c: Uint8Array) => void; close?: (e?: Error) => void; queue: Uint8Array[]; closed: boolean };
  const ea: End = { queue: [], closed: false };
  const eb: End = { queue: [], closed: false };
  const flush = (to: End) => setTimeout(() => {
    if (to.closed) return;
    for (const c of to.queue.splice(0)) to.data?.(c);
  }, 1);
  const side = (me: End, peer: End): Transport => ({
    write: (d) => {
      if (me.closed) return;
      peer.queue.push(Uint8Array.from(d));
      flush(peer);
    },
    onData: (cb) => (me.data = cb),
    onClose: (cb) => {
      const prev = me.close;
      me.close = (e) => (prev?.(e), cb(e));
    },
    // A close delivers what was written first, as a socket's FIN does; a cut does not.
    close: () => setTimeout(cut, 5),
  });
  const cut = () => {
    for (const e of [ea, eb]) {
      if (e.closed) continue;
      e.closed = true;
      e.queue.length = 0;
      setImmediate(() => e.close?.());
    }
  };
  return { a: side(ea, eb), b: side(eb, ea), cut };
}

/** A guest listener and a way for the host to dial it, with control over the links. */
function network(listener: () => ResumableListener) {
  const links: ReturnType<typeof lossyPair>[] = [];
  const connect = async () => {
    const p = lossyPair();
    links.push(p);
    void listener().accept(p.b);
    return p.a;
  };
  return { links, connect };
}

const settle = (ms = 60) => new Promise((r) => setTimeout(r, ms));

test('bytes cross a cut link exactly once and in order, both ways', async () => {
  const got: { host: number[]; guest: number[] } = { host: [], guest: [] };
  let guest: Transport | undefined;
  const l = new ResumableListener((t) => {
    guest = t;
    t.onData((c) => got.guest.push(...c));
  });
  const net = network(() => l);
  let resumed = 0;
  const host = await openResumable({ connect: net.connect, alive: () => true, resumeTimeoutMs: 2000, onResumed: () => resumed++ });
  host.onData((c) => got.host.push(...c));
  for (let i = 0; i < 200; i++) {
    host.write(Uint8Array.of(i));
    guest!.write(Uint8Array.of(255 - i));
    // Cut in the middle, with bytes in flight both ways.
    if (i === 77 || i === 150) net.links.at(-1)!.cut();
    if (i % 10 === 0) await settle(2);
  }
  await settle(300);
  assert.equal(resumed, 2);
  assert.deepEqual(got.guest, Array.from({ length: 200 }, (_, i) => i));
  assert.deepEqual(got.host, Array.from({ length: 200 }, (_, i) => 255 - i));
});

test('requests of the protocol above go on across a reset, unaware of it', async () => {
  const l = new ResumableListener((t) => {
    const agent = new Connection(t, { role: 'agent', features: FEATURES, bootId: 'b' });
    agent.onRequest(async (_m, p) => {
      await settle(30);
      return p;
    });
    void agent.handshake().catch(() => {});
  });
  const net = network(() => l);
  const host = new Connection(await openResumable({ connect: net.connect, alive: () => true, resumeTimeoutMs: 2000 }), { role: 'host', features: FEATURES });
  await host.handshake(1000);
  const pending = [1, 2, 3].map((n) => host.request('echo', { n }, 3000));
  await settle(10);
  net.links.at(-1)!.cut();
  assert.deepEqual(await Promise.all(pending), [{ n: 1 }, { n: 2 }, { n: 3 }]);
  host.close();
});

test('a new host starts a new session and ends the old one; a guest that lost the session ends the host\'s', async () => {
  const sessions: Transport[] = [];
  const closed: number[] = [];
  const l = new ResumableListener((t) => {
    const n = sessions.push(t);
    t.onClose(() => closed.push(n));
  });
  const net = network(() => l);
  await openResumable({ connect: net.connect, alive: () => true, resumeTimeoutMs: 500 });
  await openResumable({ connect: net.connect, alive: () => true, resumeTimeoutMs: 500 });
  await settle();
  assert.equal(sessions.length, 2);
  assert.deepEqual(closed, [1], 'the first session ended when the second host came');

  // The guest's agent restarted: a fresh listener that knows no session.
  let fresh = false;
  const restarted = new ResumableListener(() => {});
  const net2 = network(() => (fresh ? restarted : l));
  const host = await openResumable({ connect: net2.connect, alive: () => true, resumeTimeoutMs: 1000 });
  host.write(Buffer.from('x'));
  await settle();
  let hostClosed = false;
  host.onClose(() => (hostClosed = true));
  fresh = true;
  net2.links.at(-1)!.cut();
  await settle(200);
  assert.equal(hostClosed, true);
});

test('a peer that sends garbage instead of frames, or never acknowledges, is dropped', async () => {
  let guest: Transport | undefined;
  const l = new ResumableListener((t) => (guest = t));
  const net = network(() => l);
  const host = await openResumable({ connect: net.connect, alive: () => false, resumeTimeoutMs: 100 });
  let why: Error | undefined;
  let closed = false;
  guest!.onClose((e) => ((closed = true), (why = e)));
  // Straight onto the link, under the session: kind 9 is no frame kind.
  net.links.at(-1)!.a.write(Buffer.from([9, 0, 0, 0, 0]));
  await settle();
  assert.equal(closed, true);
  assert.match(String(why?.message), /bad resumable-stream frame/);
  host.close();
});
