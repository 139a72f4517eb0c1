import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAge, parseSize, prunePolicyFromFlags } from './prune-options.js';
import { choosePrunes, type StartupEntry } from '../snapshot/startup-cache.js';

test('prune ages and sizes parse, and bad ones name the flag', () => {
  assert.equal(parseAge('90s'), 90_000);
  assert.equal(parseAge('7d'), 7 * 86_400_000);
  assert.equal(parseSize('500M'), 500 * 2 ** 20);
  assert.equal(parseSize('0'), 0, 'everything not in use');
  assert.equal(parseSize('1.5GiB'), 1.5 * 2 ** 30);
  assert.throws(() => parseAge('7'), /invalid --older-than "7": not an age/);
  assert.throws(() => parseSize('lots'), /invalid --max-size "lots": not a size/);
  assert.throws(() => prunePolicyFromFlags({}), /say what to prune/);
  assert.deepEqual(prunePolicyFromFlags({ olderThan: '1h', maxSize: '1G' }), { olderThanMs: 3_600_000, maxBytes: 2 ** 30 });
});

const e = (tag: string, bytes: number, lastUsedMs: number, broken = false): StartupEntry => ({ tag, dir: `/x/${tag}`, bytes, lastUsedMs, broken });

test('prune removes broken and old entries, then the least recently used over the size, never those in use', () => {
  const now = 1_000_000;
  const entries = [e('a', 100, now - 500), e('b', 100, now - 50), e('c', 100, now - 10), e('d', 10, now - 900, true), e('old', 100, now - 9000)];
  const tags = (l: StartupEntry[]) => l.map((x) => x.tag).sort();
  assert.deepEqual(tags(choosePrunes(entries, new Set(), { olderThanMs: 1000 }, now)), ['d', 'old']);
  assert.deepEqual(tags(choosePrunes(entries, new Set(['old']), { olderThanMs: 1000 }, now)), ['d']);
  // 400 left after the broken one; under 250 means dropping the two least recently used.
  assert.deepEqual(tags(choosePrunes(entries, new Set(), { maxBytes: 250 }, now)), ['a', 'd', 'old']);
  assert.deepEqual(tags(choosePrunes(entries, new Set(['a']), { maxBytes: 250 }, now)), ['b', 'd', 'old']);
  assert.deepEqual(tags(choosePrunes(entries, new Set(['c']), { all: true }, now)), ['a', 'b', 'd', 'old']);
});
