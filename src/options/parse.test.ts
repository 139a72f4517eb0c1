import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCpus, parseEnv, parseMemory, parseSize, splitCommand, validateName } from './parse.js';

test('names: good ones pass, bad ones name the problem', () => {
  for (const ok of ['web1', 'a', 'A.b_c-9', 'x'.repeat(63)]) assert.equal(validateName(ok), ok);
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['x'.repeat(64), /64 characters/],
    ['../etc', /path/],
    ['a/b', /path/],
    ['a;rm -rf', /characters/],
    ['$(id)', /characters/],
    ['-lead', /characters/],
    ['a b', /characters/],
  ];
  for (const [name, re] of bad) assert.throws(() => validateName(name), re, JSON.stringify(name));
});

test('env: comma-separated pairs, commas inside values, bare keys from the host (or left out)', () => {
  assert.deepEqual(parseEnv(['GREETING=hi,WHO=me']), { GREETING: 'hi', WHO: 'me' });
  assert.deepEqual(parseEnv(['LIST=a,b,c', 'X=1=2']), { LIST: 'a,b,c', X: '1=2' });
  assert.deepEqual(parseEnv(['EMPTY=']), { EMPTY: '' });
  assert.deepEqual(parseEnv(['HOMEY'], { HOMEY: '/h' }), { HOMEY: '/h' });
  assert.throws(() => parseEnv(['=x']), /invalid --env "=x": the variable name is empty/);
  assert.throws(() => parseEnv(['A B=x']), /"A B" is not a valid variable name/);
  // As podman: any name without white space, and a bare name fcvm has no value for is left out.
  assert.deepEqual(parseEnv(['spring.profiles.active=dev', '1A=x']), { 'spring.profiles.active': 'dev', '1A': 'x' });
  assert.deepEqual(parseEnv(['NOPE_NOT_SET'], {}), {});
});

test('memory: MiB numbers and M/G suffixes within bounds', () => {
  assert.equal(parseMemory('512'), 512);
  assert.equal(parseMemory('1G'), 1024);
  assert.equal(parseMemory('768MiB'), 768);
  assert.throws(() => parseMemory('lots'), /invalid --mem "lots": not a size/);
  assert.throws(() => parseMemory('16'), /outside/);
  assert.throws(() => parseMemory('-5'), /not a size/);
});

test('cpus: whole numbers within bounds', () => {
  assert.equal(parseCpus('2'), 2);
  assert.throws(() => parseCpus('0'), /outside/);
  assert.throws(() => parseCpus('1.5'), /whole number/);
});

test('command splitting follows shell quoting without expansion', () => {
  assert.deepEqual(splitCommand(`sh -c 'echo $A; exit 7'`), ['sh', '-c', 'echo $A; exit 7']);
  assert.deepEqual(splitCommand(`echo "a \\"b\\"" c\\ d ''`), ['echo', 'a "b"', 'c d', '']);
  assert.deepEqual(splitCommand('  '), []);
  assert.throws(() => splitCommand(`echo 'oops`), /unterminated/);
});

test('sizes: suffixes are powers of 1024; junk and tiny sizes are refused', () => {
  assert.equal(parseSize('--reflink-fs', '20G', 1 << 30), 20 * 2 ** 30);
  assert.equal(parseSize('--reflink-fs', '2048M', 1 << 30), 2 ** 31);
  assert.equal(parseSize('--reflink-fs', '1TiB', 1 << 30), 2 ** 40);
  assert.throws(() => parseSize('--reflink-fs', 'lots', 1), /not a size/);
  assert.throws(() => parseSize('--reflink-fs', '10M', 1 << 30), /below 1024 MiB/);
});
