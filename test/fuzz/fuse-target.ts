import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Op } from '../../src/fuse/abi.js';
import { ownersForProcess } from '../../src/fuse/owners.js';
import { Passthrough } from '../../src/fuse/passthrough.js';
import { VolumeSession } from '../../src/fuse/session.js';
import { fsCalls } from '../../src/os/fs-calls.js';
import type { FuzzTarget } from './engine.js';

/** Opcodes a request may carry: every one the kernel sends, and now and then any number. */
const OPS = Object.values(Op).filter((v): v is number => typeof v === 'number');
const HEADER = 40;

/**
 * How a fuzz input becomes FUSE requests: records of [opcode pick, nodeid, length, args].
 * Each gets a well-formed 40-byte header (so mutations explore what the host does with
 * the arguments, not only its header checks), except that byte 0's low bit lets the
 * record's length field lie. Nodeids are small, so they name inodes the session knows.
 */
export function fuseRequestsOf(input: Buffer): Buffer[] {
  const lie = ((input[0] ?? 0) & 1) === 1;
  const out: Buffer[] = [];
  let unique = 0n;
  for (let i = 1; i + 3 <= input.length && out.length < 64;) {
    const pick = input[i]!;
    const op = pick < 250 ? OPS[pick % OPS.length]! : pick * 257;
    const nodeid = BigInt(input[i + 1]! % 8);
    const len = input[i + 2]!;
    const args = input.subarray(i + 3, i + 3 + len);
    i += 3 + len;
    const h = Buffer.alloc(HEADER);
    h.writeUInt32LE(lie ? (HEADER + args.length) ^ (pick & 7) : HEADER + args.length, 0);
    h.writeUInt32LE(op, 4);
    h.writeBigUInt64LE(++unique, 8);
    h.writeBigUInt64LE(nodeid, 16);
    h.writeUInt32LE(process.getuid?.() ?? 0, 24);
    h.writeUInt32LE(process.getgid?.() ?? 0, 28);
    h.writeUInt32LE(4242, 32);
    out.push(Buffer.concat([h, args]));
  }
  return out;
}

/** The INIT the guest's Linux 6.1 sends (7.37), always first so the other requests are served. */
export const FUSE_INIT = (() => {
  const b = Buffer.alloc(HEADER + 64);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(Op.INIT, 4);
  b.writeBigUInt64LE(1n << 40n, 8);
  b.writeUInt32LE(7, HEADER);
  b.writeUInt32LE(37, HEADER + 4);
  b.writeUInt32LE(131072, HEADER + 8);
  b.writeUInt32LE(0xffffffff, HEADER + 12);
  return b;
})();

let base: string | undefined;
let calls: Awaited<ReturnType<typeof fsCalls>> | undefined;
let unhandled: unknown;
process.on('unhandledRejection', (e) => (unhandled ??= e));

/** A fresh volume root (a file, a directory, symlinks out of it) next to a file it must never reach. */
function freshRoot(): string {
  if (base === undefined) {
    const made = mkdtempSync(join(tmpdir(), 'fcvm-fuzz-fuse-'));
    // One directory for the whole run, removed when the process ends.
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
    base = made;
  }
  const root = join(base, 'root');
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, 'dir'), { recursive: true });
  writeFileSync(join(root, 'inside'), 'data');
  symlinkSync('/', join(root, 'abs'));
  symlinkSync('../outside', join(root, 'rel'));
  writeFileSync(join(base, 'outside'), 'fcvm-outside-7d1e4b9a2c');
  return root;
}

/**
 * The host's FUSE server facing a hostile guest: whatever requests come up the volume
 * channel, the session answers without throwing, leaves no promise rejection unhandled,
 * and nothing outside the volume's root is read into a reply or changed.
 */
export const fuseFuzzTarget: FuzzTarget = {
  name: 'fuse',
  cover: ['/fuse/'],
  dictionary: [Buffer.from('inside\0'), Buffer.from('rel\0'), Buffer.from('abs\0'), Buffer.from('../outside\0'), Buffer.from('user.x\0'), Buffer.from('trusted.x\0')],
  async run(input) {
    calls ??= await fsCalls();
    const root = freshRoot();
    const fs = new Passthrough(calls, { readOnly: false, owners: ownersForProcess() });
    fs.openRoot(root);
    const replies: Buffer[] = [];
    const s = new VolumeSession(fs, (m) => replies.push(Buffer.concat(m)), { warn: () => {} });
    try {
      s.handle(FUSE_INIT);
      for (const r of fuseRequestsOf(input)) s.handle(r);
      // Data and sync calls go through the thread pool: let them answer.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    } finally {
      fs.close();
    }
    if (readFileSync(join(base!, 'outside'), 'utf8') !== 'fcvm-outside-7d1e4b9a2c') throw new Error('a request changed a file outside the volume');
    if (readdirSync(base!).sort().join(',') !== 'outside,root') throw new Error(`a request created ${readdirSync(base!).join(',')} outside the volume`);
    if (replies.some((r) => r.includes('fcvm-outside-7d1e4b9a2c'))) throw new Error('a reply carries a file from outside the volume');
    if (unhandled) {
      const e = unhandled;
      unhandled = undefined;
      throw e instanceof Error ? e : new Error(String(e));
    }
  },
};
