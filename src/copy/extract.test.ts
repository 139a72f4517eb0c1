import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Header } from 'tar';
import { extractGuestTar, type Place } from './extract.js';

/** One archive entry as a hostile guest may send it: any path, type, link and mode. */
interface Entry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'FIFO';
  data?: string;
  linkpath?: string;
  mode?: number;
}

function archive(entries: Entry[], opts: { truncate?: number } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const type = e.type ?? 'File';
    const h = new Header({ path: e.path, type, size: type === 'File' ? data.length : 0, mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644), linkpath: e.linkpath, mtime: new Date(0), uid: 0, gid: 0, devmaj: 1, devmin: 3 });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && data.length) blocks.push(Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]));
  }
  const all = Buffer.concat([...blocks, Buffer.alloc(1024)]);
  return opts.truncate ? all.subarray(0, opts.truncate) : all;
}

/** A scratch tree: `dest` to copy into, and `outside` with a canary no copy may reach. */
function scratch(): { root: string; dest: string; outside: string; canary: string; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'fcvm-cp-'));
  const dest = join(root, 'dest');
  const outside = join(root, 'outside');
  mkdirSync(dest);
  mkdirSync(outside);
  const canary = join(outside, 'canary');
  writeFileSync(canary, 'untouched');
  return { root, dest, outside, canary, done: () => rmSync(root, { recursive: true, force: true }) };
}

const into = (base: string): Place => ({ name }) => ({ base, root: name });
const run = (entries: Entry[], place: Place, overwrite = false) => extractGuestTar(Readable.from([archive(entries)]), place, { overwrite });

test('extractGuestTar: a directory lands as podman cp places it, with symbolic links verbatim and hard links kept', async () => {
  const s = scratch();
  try {
    await run([
      { path: 'd/', type: 'Directory' },
      { path: 'd/f', data: 'hello' },
      { path: 'd/abs', type: 'SymbolicLink', linkpath: '/etc/passwd' },
      { path: 'd/up', type: 'SymbolicLink', linkpath: '../../x' },
      { path: 'd/sub/', type: 'Directory' },
      { path: 'd/sub/hard', type: 'Link', linkpath: 'd/f' },
    ], into(s.dest));
    assert.equal(readFileSync(join(s.dest, 'd/f'), 'utf8'), 'hello');
    assert.equal(readlinkSync(join(s.dest, 'd/abs')), '/etc/passwd');
    assert.equal(readlinkSync(join(s.dest, 'd/up')), '../../x');
    assert.equal(lstatSync(join(s.dest, 'd/sub/hard')).ino, lstatSync(join(s.dest, 'd/f')).ino);
    // As a new name (the destination did not exist), and its contents only ("SRC/.").
    await run([{ path: 'd/', type: 'Directory' }, { path: 'd/f', data: 'x' }], () => ({ base: s.dest, root: 'renamed' }));
    assert.equal(readFileSync(join(s.dest, 'renamed/f'), 'utf8'), 'x');
    await run([{ path: 'd/', type: 'Directory' }, { path: 'd/g', data: 'y' }], () => ({ base: s.outside, root: '' }));
    assert.equal(readFileSync(join(s.outside, 'g'), 'utf8'), 'y');
  } finally {
    s.done();
  }
});

test('extractGuestTar: paths outside the copied entry are refused, and nothing lands outside', async () => {
  for (const bad of [
    [{ path: 'd/', type: 'Directory' }, { path: 'd/../../outside/canary', data: 'pwned' }],
    [{ path: '/outside/canary', data: 'pwned' }],
    [{ path: 'd/', type: 'Directory' }, { path: 'other/x', data: 'pwned' }],
    [{ path: '../outside/canary', data: 'pwned' }],
  ] as Entry[][]) {
    const s = scratch();
    try {
      await assert.rejects(run(bad, into(s.dest)), /outside/);
      assert.equal(readFileSync(s.canary, 'utf8'), 'untouched');
      assert.deepEqual(readdirSync(s.outside), ['canary']);
    } finally {
      s.done();
    }
  }
});

test('extractGuestTar: nothing is written through a symbolic link, whether the stream sent it or the host had it', async () => {
  const s = scratch();
  try {
    await assert.rejects(run([
      { path: 'd/', type: 'Directory' },
      { path: 'd/l', type: 'SymbolicLink', linkpath: s.outside },
      { path: 'd/l/canary', data: 'pwned' },
    ], into(s.dest)), /symbolic link/);
    // One the stream made a directory first, then a link.
    await assert.rejects(run([
      { path: 'e/', type: 'Directory' },
      { path: 'e/x/', type: 'Directory' },
      { path: 'e/x', type: 'SymbolicLink', linkpath: s.outside },
      { path: 'e/x/canary', data: 'pwned' },
    ], into(s.dest), true), /symbolic link/);
    // One on the host, in the directory copied into.
    mkdirSync(join(s.dest, 'h'));
    symlinkSync(s.outside, join(s.dest, 'h/sub'));
    await assert.rejects(run([{ path: 'h/', type: 'Directory' }, { path: 'h/sub/canary', data: 'pwned' }], into(s.dest)), /symbolic link/);
    // A file over a host symbolic link replaces the link and leaves its target alone.
    symlinkSync(s.canary, join(s.dest, 'h/file'));
    await run([{ path: 'h/', type: 'Directory' }, { path: 'h/file', data: 'new' }], into(s.dest));
    assert.equal(readFileSync(join(s.dest, 'h/file'), 'utf8'), 'new');
    assert.ok(!lstatSync(join(s.dest, 'h/file')).isSymbolicLink());
    assert.equal(readFileSync(s.canary, 'utf8'), 'untouched');
    assert.deepEqual(readdirSync(s.outside), ['canary']);
  } finally {
    s.done();
  }
});

test('extractGuestTar: a hard link must name a file the stream sent, never a host file', async () => {
  for (const linkpath of ['d/nothing', '../outside/canary', 'd/l/canary']) {
    const s = scratch();
    try {
      await assert.rejects(run([
        { path: 'd/', type: 'Directory' },
        { path: 'd/l', type: 'SymbolicLink', linkpath: s.outside },
        { path: 'd/hard', type: 'Link', linkpath },
      ], into(s.dest)), /hard link|outside|symbolic link/);
      assert.equal(lstatSync(s.canary).nlink, 1);
      assert.ok(!existsSync(join(s.dest, 'd/hard')));
    } finally {
      s.done();
    }
  }
});

test('extractGuestTar: devices and FIFOs are not made; setuid and setgid bits are dropped', async () => {
  const s = scratch();
  try {
    const r = await run([
      { path: 'd/', type: 'Directory' },
      { path: 'd/mem', type: 'CharacterDevice', mode: 0o666 },
      { path: 'd/fifo', type: 'FIFO' },
      { path: 'd/suid', data: '#!/bin/sh\n', mode: 0o6755 },
    ], into(s.dest));
    assert.equal(r.skipped, 2);
    assert.deepEqual(readdirSync(join(s.dest, 'd')), ['suid']);
    assert.equal(lstatSync(join(s.dest, 'd/suid')).mode & 0o7000, 0);
  } finally {
    s.done();
  }
});

test('extractGuestTar: a damaged, truncated or empty stream is an error; a directory does not replace a file without overwrite', async () => {
  const s = scratch();
  try {
    await assert.rejects(extractGuestTar(Readable.from([Buffer.alloc(2048, 0x41)]), into(s.dest), { overwrite: false }), /damaged/);
    await assert.rejects(extractGuestTar(Readable.from([archive([{ path: 'f', data: 'x'.repeat(3000) }], { truncate: 1024 })]), into(s.dest), { overwrite: false }), /damaged|Truncated/i);
    await assert.rejects(extractGuestTar(Readable.from([Buffer.alloc(1024)]), into(s.dest), { overwrite: false }), /empty|damaged/);
    writeFileSync(join(s.dest, 'd'), 'a file');
    await assert.rejects(run([{ path: 'd/', type: 'Directory' }], into(s.dest)), /overwrite/);
    assert.equal(readFileSync(join(s.dest, 'd'), 'utf8'), 'a file');
  } finally {
    s.done();
  }
});
