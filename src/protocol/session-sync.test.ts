import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resyncingTransport, SESSION_SYNC, SyncScanner } from './session-sync.js';
import { memoryTransportPair } from './transport.js';

test('the scanner finds SYNC split over chunks and returns what follows', () => {
  const s = new SyncScanner();
  const stream = Buffer.concat([Buffer.from('half a frame'), SESSION_SYNC, Buffer.from('hello')]);
  assert.equal(s.push(stream.subarray(0, 15)), undefined);
  assert.equal(s.push(stream.subarray(15, 20)), undefined);
  assert.equal(s.push(stream.subarray(20))?.toString(), 'hello');
});

test('garbage without SYNC is never delivered', () => {
  const s = new SyncScanner();
  for (let i = 0; i < 100; i++) assert.equal(s.push(Buffer.from(`frame ${i} FV....`)), undefined);
});

test('the resyncing host sends SYNC first and drops bytes before the agent\'s SYNC', async () => {
  const [host, guest] = memoryTransportPair();
  const atGuest: Buffer[] = [];
  guest.onData((c) => atGuest.push(Buffer.from(c)));
  const t = resyncingTransport(host);
  const got: Buffer[] = [];
  t.onData((c) => got.push(Buffer.from(c)));
  t.write(Buffer.from('hi'));
  guest.write(Buffer.from('stale tail of an old frame'));
  guest.write(Buffer.concat([SESSION_SYNC, Buffer.from('fresh')]));
  guest.write(Buffer.from(' session'));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(Buffer.concat(atGuest), Buffer.concat([SESSION_SYNC, Buffer.from('hi')]));
  assert.equal(Buffer.concat(got).toString(), 'fresh session');
});
