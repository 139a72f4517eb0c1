/**
 * How the host opens a volume's files for the guest: which of the guest's open flags
 * pass, and that only regular files (and directories, where asked) are ever opened.
 */
import { AT_FDCWD, O_ACCMODE, O_APPEND, O_CLOEXEC, O_RDONLY, O_TRUNC, type FsCalls } from '../os/fs-calls.js';
import { E } from './abi.js';
import { check, FsError } from './fs-error.js';
import { BENEATH, LOOKUP_FLAGS, procPath, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, statFd } from './host-fd.js';

/**
 * The guest's open flags the host open keeps: access mode, append, non-blocking, the
 * sync flags, truncation, large files. Not O_NOATIME (a rootless server may not), nor
 * O_DIRECT (the server's buffers are not aligned; the guest's own page cache is what
 * O_DIRECT bypasses), nor create, tty or the kernel's internal bits.
 */
export const PASSED_OPEN_FLAGS = O_ACCMODE | O_APPEND | 0o4000 /* O_NONBLOCK */ | 0o4010000 /* O_SYNC, O_DSYNC */ | O_TRUNC | 0o100000; /* O_LARGEFILE */

/**
 * Host open flags for a guest open: no create, no controlling tty, no O_DIRECT alignment
 * rules, close-on-exec; EROFS for a change on a read-only volume. Only flags that mean
 * something on the host pass: openat2 refuses unknown bits with EINVAL, and the kernel
 * forwards some of its own (__FMODE_EXEC for execve).
 */
export function hostOpenFlags(flags: number, readOnly: boolean): number {
  if (readOnly && ((flags & O_ACCMODE) !== O_RDONLY || flags & (O_TRUNC | O_APPEND))) throw new FsError(E.EROFS);
  return (flags & PASSED_OPEN_FLAGS) | O_CLOEXEC;
}

/**
 * Opens the file an O_PATH descriptor names, with `flags`, if it is a regular file (or a
 * directory, where `dirs` says so), and refuses anything else: opening a FIFO blocks the
 * calling thread until a peer comes (here, the supervisor's event loop), and opening a
 * device node would open the host's device. The guest kernel never sends an open for
 * either (it opens its own pipe or device), so only a hostile guest or a crafted request
 * gets the error. The descriptor names one inode, so its type cannot change in between.
 */
export function openRegular(os: FsCalls, fd: number, flags: number, dirs = false): number {
  const type = statFd(os, fd).mode & S_IFMT;
  if (type !== S_IFREG && !(dirs && type === S_IFDIR)) throw new FsError(type === S_IFDIR ? E.EISDIR : type === S_IFLNK ? E.ELOOP : E.ENXIO);
  return check(os.openat2(AT_FDCWD, procPath(fd), flags, 0, 0));
}

/** Opens an existing `name` under `pfd` as openRegular does, by an O_PATH descriptor of it. */
export function openNamedRegular(os: FsCalls, pfd: number, name: Buffer, flags: number): number {
  const opath = check(os.openat2(pfd, name, LOOKUP_FLAGS, 0, BENEATH));
  try {
    return openRegular(os, opath, flags);
  } finally {
    os.close(opath);
  }
}
