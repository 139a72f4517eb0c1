/**
 * SETATTR on a host file: mode, owner (through the volume's owner mapping), size,
 * times, and the setuid/setgid clearing the guest kernel leaves to the server
 * (HANDLE_KILLPRIV_V2). Every call goes through the inode's own descriptor, never a path.
 */
import { AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, UTIME_NOW, UTIME_OMIT, type FsCalls, type Stat, type TimeSpec } from '../os/fs-calls.js';
import { E, FATTR } from './abi.js';
import { check, FsError } from './fs-error.js';
import { EMPTY, procPath, S_IFDIR, S_IFLNK, S_IFMT, statFd } from './host-fd.js';
import type { Owners } from './owners.js';
import { ArgReader, DecodeError } from './codec.js';

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;

export interface SetAttr {
  valid: number;
  fh: bigint;
  size: number;
  atime: TimeSpec;
  mtime: TimeSpec;
  mode: number;
  uid: number;
  gid: number;
}

/**
 * Applies `a` to the file open as O_PATH descriptor `fd`; returns its attributes after.
 * `writableFd(fh)` is the descriptor of the request's own open file, where it is open
 * for writing (a truncate then goes through it, as ftruncate(2)).
 */
export function setAttributes(os: FsCalls, fd: number, a: SetAttr, owners: Owners, writableFd: (fh: bigint) => number | undefined): Stat {
  const st = statFd(os, fd);
  const isLink = (st.mode & S_IFMT) === S_IFLNK;
  if (a.valid & FATTR.MODE) {
    if (isLink) throw new FsError(E.EOPNOTSUPP);
    check(os.fchmodat(AT_FDCWD, procPath(fd), a.mode & 0o7777, 0));
  }
  if (a.valid & (FATTR.UID | FATTR.GID)) {
    const uid = a.valid & FATTR.UID ? owners.hostUid(a.uid) : -1;
    const gid = a.valid & FATTR.GID ? owners.hostGid(a.gid) : -1;
    if (uid === undefined || gid === undefined) throw new FsError(E.EPERM);
    check(os.fchownat(fd, EMPTY, uid >>> 0, gid >>> 0, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
  }
  if (a.valid & FATTR.SIZE) {
    const hfd = a.valid & FATTR.FH ? writableFd(a.fh) : undefined;
    if (hfd !== undefined) check(os.ftruncate(hfd, a.size));
    else {
      if ((st.mode & S_IFMT) === S_IFDIR) throw new FsError(E.EISDIR);
      check(os.truncate(procPath(fd), a.size));
    }
  }
  if (a.valid & (FATTR.ATIME | FATTR.MTIME | FATTR.ATIME_NOW | FATTR.MTIME_NOW)) {
    const at = a.valid & FATTR.ATIME_NOW ? { sec: 0, nsec: UTIME_NOW } : a.valid & FATTR.ATIME ? a.atime : { sec: 0, nsec: UTIME_OMIT };
    const mt = a.valid & FATTR.MTIME_NOW ? { sec: 0, nsec: UTIME_NOW } : a.valid & FATTR.MTIME ? a.mtime : { sec: 0, nsec: UTIME_OMIT };
    check(os.utimensat(fd, EMPTY, at, mt, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
  }
  // HANDLE_KILLPRIV_V2: a chown, or a truncate by a caller without CAP_FSETID.
  if (a.valid & FATTR.KILL_SUIDGID && !isLink) return killSuidSgid(os, fd);
  return statFd(os, fd);
}

/**
 * Drops setuid, and setgid where group-executable, as the kernel does when a caller
 * without CAP_FSETID writes or truncates a file (the guest kernel leaves it to us:
 * HANDLE_KILLPRIV_V2, and a root server's own writes never drop them). Returns the stat after.
 */
export function killSuidSgid(os: FsCalls, fd: number): Stat {
  const st = statFd(os, fd);
  const kill = (st.mode & S_ISUID) | ((st.mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) ? S_ISGID : 0);
  if ((st.mode & S_IFMT) === S_IFDIR || !kill) return st;
  check(os.fchmodat(AT_FDCWD, procPath(fd), st.mode & 0o7777 & ~kill, 0));
  return statFd(os, fd, st);
}

/** fuse_setattr_in. */
export function decodeSetattr(a: ArgReader): SetAttr {
  const valid = a.u32();
  a.u32();
  const fh = a.u64();
  const size = a.offset();
  a.u64();
  const atime = a.i64();
  const mtime = a.i64();
  a.i64();
  const atimensec = a.u32();
  const mtimensec = a.u32();
  a.u32();
  const mode = a.u32();
  a.u32();
  const uid = a.u32();
  const gid = a.u32();
  if (atimensec >= 1e9 || mtimensec >= 1e9) throw new DecodeError('nanoseconds out of range');
  return { valid, fh, size, atime: { sec: atime, nsec: atimensec }, mtime: { sec: mtime, nsec: mtimensec }, mode, uid, gid };
}
