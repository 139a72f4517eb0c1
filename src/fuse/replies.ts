/**
 * Encoders of FUSE reply bodies (fuse_entry_out, fuse_attr_out, dirents, ...). Pure.
 */
import type { Stat, StatFs } from '../os/fs-calls.js';
import { OutWriter } from './codec.js';

/** How host owners appear in the guest (see owners.ts). */
export interface OwnerView {
  uid(hostUid: number): number;
  gid(hostGid: number): number;
}

/** Cache lifetimes the guest kernel may keep names and attributes, in seconds. */
export interface Timeouts {
  entry: number;
  attr: number;
}

export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;

/** glibc's dev_t (major/minor split over 64 bits) to the kernel's new_encode_dev u32. */
export function encodeDev(dev: bigint): number {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn & 0xffffffffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn & 0xffffffffn));
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** The kernel's new_encode_dev u32 (fuse_mknod_in.rdev) to glibc's dev_t. */
export function decodeDev(rdev: number): bigint {
  const major = BigInt((rdev & 0xfff00) >>> 8);
  const minor = BigInt((rdev & 0xff) | ((rdev >>> 12) & 0xfff00));
  return ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
}

function attr(w: OutWriter, st: Stat, owners: OwnerView): void {
  w.u64(st.ino).u64(st.size).u64(st.blocks)
    .i64(st.atimeSec).i64(st.mtimeSec).i64(st.ctimeSec)
    .u32(st.atimeNsec).u32(st.mtimeNsec).u32(st.ctimeNsec)
    .u32(st.mode).u32(Math.min(st.nlink, 0xffffffff)).u32(owners.uid(st.uid)).u32(owners.gid(st.gid))
    .u32(encodeDev(st.rdev)).u32(st.blksize).u32(0);
}

function secs(w: OutWriter, t: number): { s: number; ns: number } {
  void w;
  const s = Math.floor(t);
  return { s, ns: Math.round((t - s) * 1e9) };
}

/** fuse_entry_out. nodeid 0 with a timeout caches a negative entry. */
export function entryOut(nodeid: bigint, st: Stat | undefined, owners: OwnerView, t: Timeouts): Buffer {
  const w = new OutWriter(ENTRY_OUT_SIZE);
  writeEntry(w, nodeid, st, owners, t);
  return w.buf;
}

function writeEntry(w: OutWriter, nodeid: bigint, st: Stat | undefined, owners: OwnerView, t: Timeouts): void {
  const e = secs(w, t.entry);
  const a = secs(w, t.attr);
  w.u64(nodeid).u64(0).u64(e.s).u64(a.s).u32(e.ns).u32(a.ns);
  if (st) attr(w, st, owners);
  else w.skip(ATTR_SIZE);
}

/** fuse_attr_out. */
export function attrOut(st: Stat, owners: OwnerView, t: Timeouts): Buffer {
  const w = new OutWriter(16 + ATTR_SIZE);
  const a = secs(w, t.attr);
  w.u64(a.s).u32(a.ns).u32(0);
  attr(w, st, owners);
  return w.buf;
}

export function openOut(fh: bigint, openFlags: number): Buffer {
  return new OutWriter(16).u64(fh).u32(openFlags).u32(0).buf;
}

export function writeOut(size: number): Buffer {
  return new OutWriter(8).u32(size).u32(0).buf;
}

export function statfsOut(s: StatFs): Buffer {
  return new OutWriter(80).u64(s.blocks).u64(s.bfree).u64(s.bavail).u64(s.files).u64(s.ffree)
    .u32(s.bsize).u32(s.namelen).u32(s.frsize).buf;
}

export function u64Out(v: number | bigint): Buffer {
  return new OutWriter(8).u64(v).buf;
}

/** fuse_getxattr_out / listxattr size probe. */
export function xattrSizeOut(size: number): Buffer {
  return new OutWriter(8).u32(size).u32(0).buf;
}

/** fuse_lk_out. */
export function lkOut(start: bigint, end: bigint, type: number, pid: number): Buffer {
  return new OutWriter(24).u64(start).u64(end).u32(type).u32(pid).buf;
}

export interface InitReply {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
}

export function initOut(r: InitReply): Buffer {
  return new OutWriter(64).u32(r.major).u32(r.minor).u32(r.maxReadahead).u32(r.flags)
    .u16(r.maxBackground).u16(r.congestionThreshold).u32(r.maxWrite).u32(r.timeGran)
    .u16(r.maxPages).u16(0).u32(0).buf;
}

const align8 = (n: number) => (n + 7) & ~7;

/** Size of a fuse_dirent with a name of `nameLen` bytes. */
export const direntSize = (nameLen: number) => align8(24 + nameLen);
/** Size of a fuse_direntplus with a name of `nameLen` bytes. */
export const direntplusSize = (nameLen: number) => align8(ENTRY_OUT_SIZE + 24 + nameLen);

/** Appends a fuse_dirent to `out` at `at`; returns the new end. `out` is zero-filled. */
export function putDirent(out: Buffer, at: number, ino: bigint, off: bigint, type: number, name: Buffer): number {
  out.writeBigUInt64LE(ino, at);
  out.writeBigUInt64LE(BigInt.asUintN(64, off), at + 8);
  out.writeUInt32LE(name.length, at + 16);
  out.writeUInt32LE(type, at + 20);
  name.copy(out, at + 24);
  return at + direntSize(name.length);
}

/** Appends a fuse_direntplus; `st` undefined (with nodeid 0) for "." and "..". */
export function putDirentplus(
  out: Buffer, at: number, nodeid: bigint, st: Stat | undefined, owners: OwnerView, t: Timeouts,
  ino: bigint, off: bigint, type: number, name: Buffer,
): number {
  const w = new OutWriter(ENTRY_OUT_SIZE);
  if (st) writeEntry(w, nodeid, st, owners, t);
  else w.skip(ENTRY_OUT_SIZE);
  w.buf.copy(out, at);
  if (!st) {
    // Only the type and inode number, as passthrough_hp gives for "." and "..".
    out.writeBigUInt64LE(ino, at + 40);
    out.writeUInt32LE(type << 12, at + 40 + 60);
  }
  putDirent(out, at + ENTRY_OUT_SIZE, ino, off, type, name);
  return at + direntplusSize(name.length);
}
