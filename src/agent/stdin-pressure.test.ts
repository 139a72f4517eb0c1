import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { STDIN_HIGH_WATER, writeStdin } from './stdin-pressure.js';

/** A process's stdin that takes nothing until `take` is called. */
function slowSink() {
  const waiting: (() => void)[] = [];
  let taken = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      waiting.push(() => ((taken += chunk.length), cb()));
    },
  });
  return { sink, take: () => waiting.splice(0).forEach((f) => f()), taken: () => taken, waiting: () => waiting.length };
}

function session() {
  const s = { holds: 0, releases: 0, hold: () => (s.holds++, () => void s.releases++) };
  return s;
}

const chunk = Buffer.alloc(64 * 1024, 1);

test('input past the high water mark holds the session once, until the process took it all', async () => {
  const { sink, take, taken } = slowSink();
  const s = session();
  const n = Math.ceil(STDIN_HIGH_WATER / chunk.length) + 4;
  for (let i = 0; i < n; i++) writeStdin(sink, chunk, s.hold);
  assert.equal(s.holds, 1, 'one hold, however many chunks came meanwhile');
  assert.equal(s.releases, 0);
  // Node writes one chunk at a time: take them until the stream is empty.
  while (taken() < n * chunk.length) {
    take();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(s.releases, 1);
  writeStdin(sink, chunk, s.hold);
  assert.equal(s.holds, 1, 'below the mark again: no hold');
});

test('a process that goes away releases the held session, and later input goes nowhere', async () => {
  const { sink } = slowSink();
  const s = session();
  for (let i = 0; i <= STDIN_HIGH_WATER / chunk.length + 1; i++) writeStdin(sink, chunk, s.hold);
  assert.equal(s.holds, 1);
  sink.destroy();
  await new Promise((r) => setImmediate(r));
  assert.equal(s.releases, 1);
  writeStdin(sink, chunk, s.hold);
  writeStdin(undefined, chunk, s.hold);
  assert.equal(s.holds, 1);
});
