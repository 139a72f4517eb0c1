import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { LinePrefixer } from './output.js';

test('lines are prefixed whole, however the bytes are chunked', () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => (text += d));
  const p = new LinePrefixer('[ctr:out]', out);
  const bytes = Buffer.from('héllo\nwor');
  for (const b of bytes) p.push(Uint8Array.of(b));
  p.push(Buffer.from('ld\n\nlast'));
  p.flush();
  assert.equal(text, '[ctr:out] héllo\n[ctr:out] world\n[ctr:out] \n[ctr:out] last\n');
});

test('a line without a newline is cut at the limit instead of held without bound', () => {
  const chunks: string[] = [];
  const p = new LinePrefixer('[x]', { write: (s) => chunks.push(s) }, 10);
  p.push(Buffer.from('a'.repeat(25)));
  assert.deepEqual(chunks, ['[x] aaaaaaaaaa\n[x] aaaaaaaaaa\n']);
  p.flush();
  assert.equal(chunks.at(-1), '[x] aaaaa\n');
});
