/**
 * The server against a hostile guest: requests built by hand and fed straight to the
 * dispatcher, no mount. Every answerable request gets exactly one answer, nothing
 * throws, and nothing outside the root is reached.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fsCalls } from '../os/fs-calls.js';
import { E, Op } from './abi.js';
import { ownersForProcess } from './owners.js';
import { Passthrough } from './passthrough.js';
import { VolumeSession } from './session.js';

let unique = 100n;

function req(op: number, nodeid: bigint, ...parts: (Buffer | string | number | bigint)[]): Buffer {
  const body = Buffer.concat(parts.map((p) => {
    if (Buffer.isBuffer(p)) return p;
    if (typeof p === 'string') return Buffer.from(`${p}\0`);
    const b = Buffer.alloc(typeof p === 'bigint' ? 8 : 4);
    if (typeof p === 'bigint') b.writeBigUInt64LE(p);
    else b.writeUInt32LE(p);
    return b;
  }));
  const h = Buffer.alloc(40);
  h.writeUInt32LE(40 + body.length, 0);
  h.writeUInt32LE(op, 4);
  h.writeBigUInt64LE(++unique, 8);
  h.writeBigUInt64LE(nodeid, 16);
  return Buffer.concat([h, body]);
}

async function setup(readOnly = false) {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-session-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  writeFileSync(join(dir, 'outside'), 'secret');
  writeFileSync(join(root, 'inside'), 'data');
  symlinkSync('/', join(root, 'abs'));
  symlinkSync('../outside', join(root, 'rel'));
  const fs = new Passthrough(await fsCalls(), { readOnly, owners: ownersForProcess() });
  fs.openRoot(root);
  const replies: Buffer[] = [];
  const s = new VolumeSession(fs, (m) => replies.push(Buffer.concat(m)), { warn: () => {} });
  const call = async (r: Buffer): Promise<{ error: number; body: Buffer }> => {
    const before = replies.length;
    s.handle(r);
    // Most replies come at once; data and sync calls go through the thread pool.
    for (let i = 0; i < 600 && replies.length === before; i++) await new Promise((res) => (i < 100 ? setImmediate(res) : setTimeout(res, 10)));
    assert.equal(replies.length, before + 1, 'exactly one reply');
    const out = replies[before]!;
    assert.equal(out.readBigUInt64LE(8), r.readBigUInt64LE(8));
    return { error: Math.abs(out.readInt32LE(4)), body: out.subarray(16) };
  };
  // INIT: 7.37, as Linux 6.1 speaks.
  const init = await call(req(Op.INIT, 0n, 7, 37, 131072, 0xffffffff, 0, Buffer.alloc(44)));
  assert.equal(init.error, 0);
  return { dir, root, fs, s, call, replies, done: () => (fs.close(), rmSync(dir, { recursive: true, force: true })) };
}

test('INIT negotiates big writes, readdirplus, parallel dirops and no writeback cache', async () => {
  const t = await setup();
  try {
    const r = await t.call(req(Op.INIT, 0n, 7, 40, 131072, 0xffffffff, 0, Buffer.alloc(44)));
    const flags = r.body.readUInt32LE(12);
    assert.equal(r.body.readUInt32LE(4), 38);
    assert.ok(flags & (1 << 5) && flags & (1 << 13) && flags & (1 << 18) && flags & (1 << 22));
    assert.equal(flags & (1 << 16), 0, 'writeback cache');
    assert.equal(r.body.readUInt32LE(20), 1 << 20, 'max_write');
  } finally {
    t.done();
  }
});

test('names that try to leave the root are refused; symlinks are never followed', async () => {
  const t = await setup();
  try {
    for (const name of ['..', '.', 'a/b', '/etc', '']) {
      const r = await t.call(req(Op.LOOKUP, 1n, name));
      assert.notEqual(r.error, 0, name);
    }
    // The symlink itself is looked up; opening it as a directory or file fails.
    const abs = await t.call(req(Op.LOOKUP, 1n, 'abs'));
    assert.equal(abs.error, 0);
    const absId = abs.body.readBigUInt64LE(0);
    assert.equal((await t.call(req(Op.OPENDIR, absId, 0, 0))).error, E.ENOTDIR);
    assert.equal((await t.call(req(Op.LOOKUP, absId, 'etc'))).error, E.ENOTDIR);
    const rel = await t.call(req(Op.LOOKUP, 1n, 'rel'));
    const relId = rel.body.readBigUInt64LE(0);
    assert.equal((await t.call(req(Op.OPEN, relId, 0, 0))).error, E.ELOOP);
    // Unknown nodeids and handles: ESTALE and EBADF, never another file.
    assert.equal((await t.call(req(Op.GETATTR, 999n, 0, 0, 0n))).error, E.ESTALE);
    assert.equal((await t.call(req(Op.LINK, 1n, 999n, 'x'))).error, E.ESTALE);
    assert.equal((await t.call(req(Op.READ, 1n, 77n, 0n, 10, 0, 0n, 0, 0))).error, E.EBADF);
    assert.equal((await t.call(req(Op.READDIR, 1n, 77n, 0n, 4096, 0, 0n, 0, 0))).error, E.EBADF);
    // Hard-linking the root-relative symlink target is not possible: only table inodes link.
    assert.equal(readFileSync(join(t.dir, 'outside'), 'utf8'), 'secret');
  } finally {
    t.done();
  }
});

test('a read-only volume refuses every change on the host side', async () => {
  const t = await setup(true);
  try {
    const look = await t.call(req(Op.LOOKUP, 1n, 'inside'));
    const id = look.body.readBigUInt64LE(0);
    const cases: [string, Buffer][] = [
      ['mkdir', req(Op.MKDIR, 1n, 0o755, 0, 'd')],
      ['create', req(Op.CREATE, 1n, 0o101, 0o644, 0, 0, 'c')],
      ['unlink', req(Op.UNLINK, 1n, 'inside')],
      ['open for write', req(Op.OPEN, id, 1, 0)],
      ['truncate', req(Op.SETATTR, id, 8, 0, 0n, 0n, 0n, 0n, 0n, 0n, 0, 0, 0, 0, 0, 0, 0, 0)],
      ['symlink', req(Op.SYMLINK, 1n, 's', 'inside')],
      ['rename', req(Op.RENAME2, 1n, 1n, 0, 0, 'inside', 'x')],
      ['setxattr', req(Op.SETXATTR, id, 1, 0, 'user.a', Buffer.from('v'))],
    ];
    for (const [what, r] of cases) assert.equal((await t.call(r)).error, E.EROFS, what);
    assert.equal(readFileSync(join(t.root, 'inside'), 'utf8'), 'data');
    assert.equal(existsSync(join(t.root, 'd')), false);
  } finally {
    t.done();
  }
});

test('malformed and random requests are answered or dropped, never crash, never grow', async () => {
  const t = await setup();
  try {
    // Short, lying or oversized headers and arguments.
    const bad = [
      req(Op.LOOKUP, 1n), // no name
      req(Op.LOOKUP, 1n, Buffer.from('noterminator')),
      req(Op.LOOKUP, 1n, 'x'.repeat(300)),
      req(Op.READ, 1n, 1n),
      req(Op.WRITE, 1n, 1n, 0n, 100, 0, 0n, 0, 0, Buffer.from('short')),
      req(Op.SETATTR, 1n, 1),
      req(Op.GETXATTR, 1n, 1 << 30, 0, 'user.x'),
      req(Op.READ, 1n, 1n, 0xffffffffffffffffn, 10, 0, 0n, 0, 0),
      req(9999, 1n),
    ];
    for (const r of bad) assert.notEqual((await t.call(r)).error, 0);
    // Requests that get no answer, however malformed.
    for (const r of [req(Op.FORGET, 999n), req(Op.BATCH_FORGET, 1n, 0xffffffff, 0), req(Op.INTERRUPT, 1n, 5n)]) {
      const before = t.replies.length;
      t.s.handle(r);
      await new Promise((res) => setImmediate(res));
      assert.equal(t.replies.length, before);
    }
    // A header whose length disagrees with the bytes.
    const lie = req(Op.GETATTR, 1n, 0, 0, 0n);
    lie.writeUInt32LE(4096, 0);
    t.s.handle(lie);
    // Random garbage after a valid header, thousands of times.
    for (let i = 0; i < 3000; i++) {
      const op = 1 + (i % 51);
      const r = req(op, BigInt(i % 5), randomBytes(i % 200));
      t.s.handle(r);
    }
    for (let i = 0; i < 50; i++) await new Promise((res) => setImmediate(res));
    assert.equal(readFileSync(join(t.dir, 'outside'), 'utf8'), 'secret');
    assert.ok(t.fs.inodes.size < 3100);
    assert.ok(t.fs.handles.size < 3100);
  } finally {
    t.done();
  }
});

test('a RELEASE while a read is in flight closes the descriptor only after the read', async () => {
  const t = await setup();
  try {
    const look = await t.call(req(Op.LOOKUP, 1n, 'inside'));
    const id = look.body.readBigUInt64LE(0);
    const open = await t.call(req(Op.OPEN, id, 0, 0));
    const fh = open.body.readBigUInt64LE(0);
    const h = t.fs.handles.get(fh)!;
    const before = t.replies.length;
    t.s.handle(req(Op.READ, id, fh, 0n, 4096, 0, 0n, 0, 0));
    t.s.handle(req(Op.RELEASE, id, fh, 0, 0, 0n));
    assert.equal(h.busy, 1);
    assert.equal(h.released, true);
    for (let i = 0; i < 500 && t.replies.length < before + 2; i++) await new Promise((res) => setTimeout(res, 10));
    const read = t.replies.slice(before).find((r) => r.length > 16)!;
    assert.equal(read.subarray(16).toString(), 'data');
    assert.equal(h.busy, 0);
  } finally {
    t.done();
  }
});

test('SYNCFS syncs the host file system of the volume', async () => {
  const t = await setup();
  try {
    assert.equal((await t.call(req(Op.SYNCFS, 1n, 0n))).error, 0);
  } finally {
    t.done();
  }
});

test('attribute hints go ahead of the reply: the file after a WRITE, the directory after a change of its names', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-session-'));
  const fs = new Passthrough(await fsCalls(), { readOnly: false, owners: ownersForProcess() });
  fs.openRoot(dir);
  const events: string[] = [];
  const sizes = new Map<bigint, bigint>();
  let last = Buffer.alloc(0);
  const s = new VolumeSession(fs, (m) => {
    last = Buffer.concat(m);
    events.push(`reply ${last.readBigUInt64LE(8)}`);
  }, { warn: () => {} }, undefined, {
    attr: (nodeid, attr) => {
      events.push(`hint ${nodeid}`);
      sizes.set(nodeid, attr.readBigUInt64LE(16 + 8));
    },
    emptyDir: () => {},
  });
  const settle = async (n: number) => {
    for (let i = 0; i < 600 && events.length < n; i++) await new Promise((res) => (i < 100 ? setImmediate(res) : setTimeout(res, 10)));
  };
  try {
    s.handle(req(Op.INIT, 0n, 7, 37, 131072, 0xffffffff, 0, Buffer.alloc(44)));
    await settle(1);
    events.length = 0;
    const create = req(Op.CREATE, 1n, 0o101, 0o644, 0, 0, 'f');
    s.handle(create);
    await settle(2);
    assert.deepEqual(events, ['hint 1', `reply ${create.readBigUInt64LE(8)}`]);
    // entry_out (nodeid first, 128 bytes), then open_out (fh first).
    const nodeid = last.readBigUInt64LE(16);
    const fh = last.readBigUInt64LE(16 + 128);
    events.length = 0;
    const write = req(Op.WRITE, nodeid, fh, 0n, 5, 0, 0n, 0, 0, Buffer.from('hello'));
    s.handle(write);
    await settle(2);
    assert.deepEqual(events, [`hint ${nodeid}`, `reply ${write.readBigUInt64LE(8)}`]);
    assert.equal(sizes.get(nodeid), 5n, 'the size after the write');
    events.length = 0;
    const unlink = req(Op.UNLINK, 1n, 'f');
    s.handle(unlink);
    await settle(2);
    assert.deepEqual(events, ['hint 1', `reply ${unlink.readBigUInt64LE(8)}`]);
  } finally {
    fs.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('FIFOs and device nodes are never opened on the host: no blocked event loop, no host device in the guest\'s hands', async () => {
  const w = await setup();
  try {
    execFileSync('mkfifo', [join(w.root, 'hostfifo')]);
    const S_IFIFO = 0o010000;
    const S_IFCHR = 0o020000;
    const S_IFBLK = 0o060000;
    const made = await w.call(req(Op.MKNOD, 1n, S_IFIFO | 0o644, 0, 0, 0, 'guestfifo'));
    assert.equal(made.error, 0);
    const host = await w.call(req(Op.LOOKUP, 1n, 'hostfifo'));
    const inside = await w.call(req(Op.LOOKUP, 1n, 'inside'));
    const fh = (await w.call(req(Op.OPEN, inside.body.readBigUInt64LE(0), 2, 0))).body.readBigUInt64LE(0);
    for (const id of [made.body.readBigUInt64LE(0), host.body.readBigUInt64LE(0)]) {
      // An open of a FIFO for reading or writing would wait for a peer: on the event loop, forever.
      for (const flags of [0, 1, 2]) assert.equal((await w.call(req(Op.OPEN, id, flags, 0))).error, E.ENXIO, `open ${flags}`);
      // A lock opens the inode for its owner: only with a handle of that very inode.
      assert.equal((await w.call(req(Op.SETLK, id, fh, 7n, 0n, 10n, 1, 0, 0, 0))).error, E.EBADF, 'lock');
    }
    // A CREATE without O_EXCL of an existing FIFO opens nothing either.
    assert.equal((await w.call(req(Op.CREATE, 1n, 0, 0o644, 0, 0, 'hostfifo'))).error, E.ENXIO);
    assert.equal((await w.call(req(Op.CREATE, 1n, 0o200, 0o644, 0, 0, 'hostfifo'))).error, E.EEXIST);
    // Device nodes are made (as a rootful container makes them in a bind mount), never opened:
    // the host's /dev/null (1:3) and its first disk (8:0) stay out of the guest's reach.
    for (const [mode, rdev, name] of [[S_IFCHR | 0o666, 0x103, 'null'], [S_IFBLK | 0o666, 0x800, 'sda']] as const) {
      const dev = await w.call(req(Op.MKNOD, 1n, mode, rdev, 0, 0, name));
      assert.equal(dev.error, 0, name);
      for (const flags of [0, 2]) assert.equal((await w.call(req(Op.OPEN, dev.body.readBigUInt64LE(0), flags, 0))).error, E.ENXIO, name);
    }
    // The server still answers, and a regular file still opens and creates.
    assert.equal((await w.call(req(Op.SETLK, inside.body.readBigUInt64LE(0), fh, 7n, 0n, 10n, 1, 0, 0, 0))).error, 0);
    assert.equal((await w.call(req(Op.CREATE, 1n, 0o1, 0o644, 0, 0, 'inside'))).error, 0);
    assert.equal((await w.call(req(Op.CREATE, 1n, 0o1, 0o644, 0, 0, 'fresh'))).error, 0);
  } finally {
    w.done();
  }
});
