import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsCalls } from '../os/fs-calls.js';
import type { Transport } from '../protocol/transport.js';
import { encodeFuseFrame, FuseFrameKind } from './channel-frames.js';
import { ownersForProcess } from './owners.js';
import { VolumeServer } from './volume-server.js';

/** A transport whose peer does not read: its backlog is whatever the test says. */
function stalledTransport() {
  const state = { data: undefined as ((c: Uint8Array) => void) | undefined, paused: 0, resumed: 0, backlog: 0, written: 0, closed: false };
  const t: Transport = {
    write: (d) => void (state.written += d.length),
    onData: (cb) => (state.data = cb),
    onClose: () => {},
    close: () => void (state.closed = true),
    pause: () => void state.paused++,
    resume: () => void state.resumed++,
    backlog: () => state.backlog,
  };
  return { t, state };
}

test('a guest that does not read its replies makes the server stop reading, then go on', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-vs-'));
  const server = new VolumeServer([{ index: 0, hostPath: dir, readOnly: false }], await fsCalls(), ownersForProcess(), { warn: () => {} });
  try {
    const { t, state } = stalledTransport();
    server.attach(t);
    state.backlog = 100 << 20;
    const h = Buffer.alloc(40);
    h.writeUInt32LE(40, 0);
    h.writeUInt32LE(17, 4); // STATFS before INIT: answered with EIO
    h.writeBigUInt64LE(5n, 8);
    state.data!(encodeFuseFrame(0, FuseFrameKind.Message, h));
    assert.equal(state.paused, 1);
    assert.equal(state.resumed, 0);
    state.backlog = 0;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(state.resumed, 1);
    assert.equal(server.heldForRequests, 0);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a frame that breaks the framing closes the channel', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-vs-'));
  const server = new VolumeServer([{ index: 0, hostPath: dir, readOnly: false }], await fsCalls(), ownersForProcess(), { warn: () => {} });
  try {
    const { t, state } = stalledTransport();
    server.attach(t);
    const bad = Buffer.alloc(8);
    bad.writeUInt32LE(0xffffffff, 0);
    state.data!(bad);
    assert.equal(state.closed, true);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
