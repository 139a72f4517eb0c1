/**
 * Numbers of the FUSE kernel protocol (include/uapi/linux/fuse.h), the subset fcvm's
 * volumes speak. Structures are little-endian on x86_64 and aarch64.
 */
export const FUSE_KERNEL_VERSION = 7;
/** The minor version fcvm speaks; the kernel's may be lower (6.1 speaks 31..37) or higher. */
export const FUSE_KERNEL_MINOR_VERSION = 38;
/** The oldest minor fcvm accepts: 7.31 (Linux 5.4) has every field it reads. */
export const FUSE_MIN_MINOR = 31;
export const FUSE_ROOT_ID = 1n;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;

export enum Op {
  LOOKUP = 1, FORGET = 2, GETATTR = 3, SETATTR = 4, READLINK = 5, SYMLINK = 6, MKNOD = 8,
  MKDIR = 9, UNLINK = 10, RMDIR = 11, RENAME = 12, LINK = 13, OPEN = 14, READ = 15,
  WRITE = 16, STATFS = 17, RELEASE = 18, FSYNC = 20, SETXATTR = 21, GETXATTR = 22,
  LISTXATTR = 23, REMOVEXATTR = 24, FLUSH = 25, INIT = 26, OPENDIR = 27, READDIR = 28,
  RELEASEDIR = 29, FSYNCDIR = 30, GETLK = 31, SETLK = 32, SETLKW = 33, ACCESS = 34,
  CREATE = 35, INTERRUPT = 36, BMAP = 37, DESTROY = 38, IOCTL = 39, POLL = 40,
  NOTIFY_REPLY = 41, BATCH_FORGET = 42, FALLOCATE = 43, READDIRPLUS = 44, RENAME2 = 45,
  LSEEK = 46, COPY_FILE_RANGE = 47, SYNCFS = 50, TMPFILE = 51,
}

/** INIT flags (fuse_init_in/out.flags; bits 32+ go in flags2). */
export const INIT = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  ATOMIC_O_TRUNC: 1 << 3,
  BIG_WRITES: 1 << 5,
  FLOCK_LOCKS: 1 << 10,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  ABORT_ERROR: 1 << 21,
  HANDLE_KILLPRIV_V2: 1 << 28,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  INIT_EXT: 1 << 30,
} as const;

/** fuse_setattr_in.valid bits. */
export const FATTR = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5,
  FH: 1 << 6, ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, LOCKOWNER: 1 << 9, CTIME: 1 << 10,
  KILL_SUIDGID: 1 << 11,
} as const;

/** The file capability xattr, which a volume never shows (see Passthrough.getxattr). */
export const XATTR_CAPS = 'security.capability';

export const FOPEN_KEEP_CACHE = 1 << 1;
/** fuse_write_in.write_flags: the writer lacks CAP_FSETID, so suid/sgid go (HANDLE_KILLPRIV_V2). */
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;
/** fuse_open_in/fuse_create_in.open_flags: an O_TRUNC open by such a caller. */
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0;
export const FUSE_GETATTR_FH = 1;
export const NOTIFY = { INVAL_INODE: 2, INVAL_ENTRY: 3, DELETE: 6 } as const;

/** The largest write (and read) fcvm negotiates: 256 pages. */
export const MAX_WRITE = 1 << 20;
export const MAX_PAGES = MAX_WRITE / 4096;
/** A /dev/fuse read buffer must hold a whole WRITE request: header, write_in, data. */
export const REQUEST_BUFFER_SIZE = MAX_WRITE + 4096;
export const NAME_MAX = 255;
export const PATH_MAX = 4096;
export const XATTR_SIZE_MAX = 65536;
export const XATTR_LIST_MAX = 65536;

/** errno values (Linux) the server answers with. */
export const E = {
  EPERM: 1, ENOENT: 2, EINTR: 4, EIO: 5, ENXIO: 6, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EBUSY: 16,
  EEXIST: 17, EXDEV: 18, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24,
  EFBIG: 27, ENOSPC: 28, EROFS: 30, ERANGE: 34, ENAMETOOLONG: 36, ENOLCK: 37, ENOSYS: 38, ENOTEMPTY: 39,
  ELOOP: 40, ENODATA: 61, EPROTO: 71, EOVERFLOW: 75, EOPNOTSUPP: 95, ESTALE: 116,
} as const;
