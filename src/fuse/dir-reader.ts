/**
 * READDIR and READDIRPLUS over a directory handle. Each handle keeps the getdents64
 * buffer and the offset after its last entry sent, so listing a directory costs one
 * pass over it (the seed re-read the whole directory on every call: O(n^2)). An offset
 * the handle is not at (a seekdir, a rewind) is reached with lseek, as the offsets are
 * the host file system's own d_off cookies.
 */
import { O_CLOEXEC, O_DIRECTORY, O_RDONLY } from '../os/fs-calls.js';
import { E } from './abi.js';
import { FsError } from './fs-error.js';
import type { Passthrough } from './passthrough.js';
import { direntplusSize, direntSize, putDirent, putDirentplus, type OwnerView, type Timeouts } from './replies.js';

const SEEK_SET = 0;
const GETDENTS_BUFFER = 64 * 1024;

export function readDirectory(fs: Passthrough, fh: bigint, offset: bigint, size: number, plus: boolean, owners: OwnerView, t: Timeouts): Buffer {
  const h = fs.handles.require(fh, true);
  const fd = fs.handleFd(h);
  let s = h.dirState;
  if (!s || s.pos !== offset) {
    const r = fs.os.lseek(fd, offset, SEEK_SET);
    if (r < 0) throw new FsError(-r);
    s = { pos: offset, buf: s?.buf ?? Buffer.allocUnsafe(GETDENTS_BUFFER), at: 0, end: 0 };
    h.dirState = s;
  }
  const out = Buffer.alloc(size);
  let used = 0;
  for (;;) {
    if (s.at >= s.end) {
      const n = fs.os.getdents64(fd, s.buf);
      if (n < 0) {
        if (used > 0) break;
        throw new FsError(-n);
      }
      if (n === 0) break;
      s.at = 0;
      s.end = n;
    }
    const b = s.buf;
    const reclen = b.readUInt16LE(s.at + 16);
    if (reclen < 20 || s.at + reclen > s.end) throw new FsError(E.EIO, 'malformed getdents64 record');
    const ino = b.readBigUInt64LE(s.at);
    const off = b.readBigInt64LE(s.at + 8);
    const type = b.readUInt8(s.at + 18);
    const nameEnd = b.indexOf(0, s.at + 19);
    const name = b.subarray(s.at + 19, nameEnd < 0 || nameEnd > s.at + reclen ? s.at + reclen : nameEnd);
    const need = plus ? direntplusSize(name.length) : direntSize(name.length);
    if (used + need > size) {
      // Not even one entry fits: the caller's buffer is too small.
      if (used === 0) throw new FsError(E.EINVAL, 'readdir buffer too small');
      break;
    }
    const dot = name.length === 1 && name[0] === 0x2e || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
    if (plus) {
      let entry: ReturnType<Passthrough['lookup']> | undefined;
      if (!dot) {
        try {
          entry = fs.lookup(h.nodeid, Buffer.concat([name, ZERO]));
        } catch {
          // Gone since getdents: a plain entry, with no lookup counted.
        }
      }
      used = putDirentplus(out, used, entry?.inode.nodeid ?? 0n, entry?.st, owners, t, ino, off, type, name);
    } else used = putDirent(out, used, ino, off, type, name);
    s.at += reclen;
    s.pos = off;
  }
  return out.subarray(0, used);
}

const ZERO = Buffer.alloc(1);

/** statfs f_type of file systems that compare names without case: vfat, exfat, ntfs/ntfs3, hfsplus. */
const CASELESS_FS = new Set([0x4d44, 0x2011bab0, 0x5346544e, 0x7366746e, 0x482b]);
const FS_CASEFOLD_FL = 0x40000000;

/**
 * True if directory `nodeid` holds no name but "." and "..", and tells names apart
 * byte for byte (no case folding: not a caseless file system, no ext4/f2fs casefold
 * flag). Then every name in it is known by who made it (the guest relay's absent.c).
 */
export function isEmptyExactDir(fs: Passthrough, nodeid: bigint): boolean {
  const dfd = fs.os.openat2(fs.fdOf(fs.inodes.require(nodeid)), Buffer.from('.\0'), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0);
  if (dfd < 0) return false;
  try {
    const sfs = { type: 0, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 0, namelen: 0, frsize: 0 };
    if (fs.os.fstatfs(dfd, sfs) < 0 || CASELESS_FS.has(sfs.type)) return false;
    const flags = fs.os.inodeFlags(dfd);
    if (flags >= 0 && flags & FS_CASEFOLD_FL) return false;
    const buf = Buffer.allocUnsafe(1024);
    for (let n = fs.os.getdents64(dfd, buf); n > 0; n = fs.os.getdents64(dfd, buf)) {
      // linux_dirent64: ino u64, off i64, reclen u16, type u8, then the name.
      for (let at = 0; at < n; at += buf.readUInt16LE(at + 16)) {
        const len = buf.indexOf(0, at + 19) - (at + 19);
        if (len > 2 || buf[at + 19] !== 0x2e || (len === 2 && buf[at + 20] !== 0x2e)) return false;
      }
    }
    return true;
  } finally {
    fs.os.close(dfd);
  }
}
