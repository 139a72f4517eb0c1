import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createProgress } from './progress.js';

function sink(isTTY: boolean) {
  const out = Object.assign(new PassThrough(), { isTTY, columns: 40 });
  let text = '';
  out.on('data', (d) => (text += d));
  return { out, text: () => text };
}

test('off a terminal: lasting lines only, no repeats, no live lines', () => {
  const s = sink(false);
  const p = createProgress(s.out, 'setup');
  for (let i = 0; i < 160; i++) {
    p.say('rootfs: retrieving packages');
    p.live(`rootfs: retrieving libfoo${i}`);
  }
  p.say('rootfs: validating packages');
  p.done();
  assert.equal(s.text(), 'setup: rootfs: retrieving packages\nsetup: rootfs: validating packages\n');
});

test('on a terminal: the live line is rewritten in place and cut to the width', () => {
  const s = sink(true);
  const p = createProgress(s.out, 'setup');
  p.live('a');
  p.live('b'.repeat(100));
  p.say('phase');
  p.live('c');
  p.done();
  assert.equal(s.text(), `\r\x1b[Ksetup: a\r\x1b[Ksetup: ${'b'.repeat(29)}...\r\x1b[Ksetup: phase\n\r\x1b[Ksetup: c\r\x1b[K`);
});
