/**
 * The *at() file-system calls Node lacks, for the volume passthrough server (host),
 * bound through ffi.ts (koffi stays in src/os/). Every call is synchronous and returns a result or a negative
 * errno, never throws: a hostile guest's request must cost a
 * failed syscall, not an exception. Names are NUL-terminated Buffers (file names are
 * bytes, not UTF-8).
 */
import { ffiAsync } from './ffi.js';

/** The stat fields the passthrough uses; dev and ino as bigint (u64). */
export interface Stat {
  dev: bigint;
  ino: bigint;
  nlink: number;
  mode: number;
  uid: number;
  gid: number;
  rdev: bigint;
  size: number;
  blksize: number;
  blocks: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

export interface StatFs {
  /** f_type: the file system's magic number. */
  type: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** struct flock: type F_RDLCK 0, F_WRLCK 1, F_UNLCK 2; len 0 means to the end of the file. */
export interface FileLock {
  type: number;
  start: bigint;
  len: bigint;
  pid: number;
}
export const F_OFD_GETLK = 36;
export const F_OFD_SETLK = 37;

/** A time for utimensat: seconds and nanoseconds, or UTIME_NOW / UTIME_OMIT in nsec. */
export interface TimeSpec {
  sec: number;
  nsec: number;
}
export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const O_PATH = 0o10000000;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;
export const O_DIRECTORY = 0o200000;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;

/** The narrow interface of file-system calls the passthrough makes. */
export interface FsCalls {
  /** openat2(2); returns an fd or -errno. */
  openat2(dirfd: number, name: Buffer, flags: number, mode: number, resolve: number): number;
  /** fstatat(2) into `out`; 0 or -errno. */
  fstatat(dirfd: number, name: Buffer, flags: number, out: Stat): number;
  mkdirat(dirfd: number, name: Buffer, mode: number): number;
  mknodat(dirfd: number, name: Buffer, mode: number, rdev: bigint): number;
  symlinkat(target: Buffer, dirfd: number, name: Buffer): number;
  /** Fills `buf`; returns the length or -errno. */
  readlinkat(dirfd: number, name: Buffer, buf: Buffer): number;
  unlinkat(dirfd: number, name: Buffer, flags: number): number;
  renameat2(olddirfd: number, oldname: Buffer, newdirfd: number, newname: Buffer, flags: number): number;
  linkat(olddirfd: number, oldname: Buffer, newdirfd: number, newname: Buffer, flags: number): number;
  fchownat(dirfd: number, name: Buffer, uid: number, gid: number, flags: number): number;
  fchmodat(dirfd: number, name: Buffer, mode: number, flags: number): number;
  utimensat(dirfd: number, name: Buffer | null, atime: TimeSpec, mtime: TimeSpec, flags: number): number;
  truncate(path: Buffer, size: number): number;
  ftruncate(fd: number, size: number): number;
  /** getdents64(2) into `buf`; bytes filled or -errno. */
  getdents64(fd: number, buf: Buffer): number;
  /** lseek(2); the new offset or -errno. */
  lseek(fd: number, offset: number | bigint, whence: number): number;
  fstatfs(fd: number, out: StatFs): number;
  fallocate(fd: number, mode: number, offset: number, len: number): number;
  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number, flags: number): number;
  getxattr(path: Buffer, name: Buffer, buf: Buffer | null): number;
  setxattr(path: Buffer, name: Buffer, value: Buffer, flags: number): number;
  listxattr(path: Buffer, buf: Buffer | null): number;
  removexattr(path: Buffer, name: Buffer): number;
  /** syncfs(2) in a pool thread (it may take long); resolves 0, or -EIO on failure. */
  syncfs(fd: number): Promise<number>;
  /** flock(2); 0 or -errno. */
  flock(fd: number, op: number): number;
  /**
   * fcntl(2) with a struct flock (F_OFD_GETLK/F_OFD_SETLK): 0 or -errno. For GETLK the
   * lock found is written back into `lk`.
   */
  fcntlLock(fd: number, cmd: number, lk: FileLock): number;
  /** setfsuid(2)/setfsgid(2) of the calling thread; return the previous id. */
  setfsuid(uid: number): number;
  setfsgid(gid: number): number;
  close(fd: number): number;
  /** inotify_init1(IN_NONBLOCK|IN_CLOEXEC): an fd or -errno. */
  inotifyInit(): number;
  /** The inode's flags (FS_IOC_GETFLAGS: FS_CASEFOLD_FL and the like) of an open, non-O_PATH descriptor, or -errno. */
  inodeFlags(fd: number): number;
  /** inotify_add_watch(2): a watch descriptor or -errno. */
  inotifyAddWatch(fd: number, path: Buffer, mask: number): number;
  inotifyRmWatch(fd: number, wd: number): number;
  /** read(2) into `buf`: bytes read or -errno (-EAGAIN when a non-blocking fd has nothing). */
  read(fd: number, buf: Buffer): number;
}

const SYS_openat2 = 437;
const SYS_getdents64 = 217;

let fsCache: FsCalls | undefined;

/** The host passthrough's system calls (x86_64 Linux, glibc). */
export async function fsCalls(): Promise<FsCalls> {
  if (fsCache) return fsCache;
  const { koffi, lib } = await ffiAsync();
  const f = (decl: string) => lib.func(decl);
  const openat2 = f('long syscall(long nr, int dirfd, const uint8_t *path, const uint8_t *how, size_t size)');
  const getdents = f('long syscall(long nr, int fd, uint8_t *buf, size_t n)');
  const fstatat = f('int fstatat(int dirfd, const uint8_t *path, uint8_t *st, int flags)');
  const mkdirat = f('int mkdirat(int dirfd, const uint8_t *path, uint32_t mode)');
  const mknodat = f('int mknodat(int dirfd, const uint8_t *path, uint32_t mode, uint64_t dev)');
  const symlinkat = f('int symlinkat(const uint8_t *target, int dirfd, const uint8_t *path)');
  const readlinkat = f('long readlinkat(int dirfd, const uint8_t *path, uint8_t *buf, size_t n)');
  const unlinkat = f('int unlinkat(int dirfd, const uint8_t *path, int flags)');
  const renameat2 = f('int renameat2(int od, const uint8_t *op, int nd, const uint8_t *np, unsigned int flags)');
  const linkat = f('int linkat(int od, const uint8_t *op, int nd, const uint8_t *np, int flags)');
  const fchownat = f('int fchownat(int dirfd, const uint8_t *path, uint32_t uid, uint32_t gid, int flags)');
  const fchmodat = f('int fchmodat(int dirfd, const uint8_t *path, uint32_t mode, int flags)');
  const utimensat = f('int utimensat(int dirfd, const uint8_t *path, const uint8_t *times, int flags)');
  const truncate = f('int truncate(const uint8_t *path, int64_t size)');
  const ftruncate = f('int ftruncate(int fd, int64_t size)');
  const lseek = f('int64_t lseek(int fd, int64_t off, int whence)');
  const fstatfs = f('int fstatfs(int fd, uint8_t *buf)');
  const fallocate = f('int fallocate(int fd, int mode, int64_t off, int64_t len)');
  const cfr = f('long copy_file_range(int fi, uint8_t *oi, int fo, uint8_t *oo, size_t len, unsigned int flags)');
  const getxattr = f('long getxattr(const uint8_t *path, const uint8_t *name, uint8_t *buf, size_t n)');
  const setxattr = f('int setxattr(const uint8_t *path, const uint8_t *name, const uint8_t *v, size_t n, int flags)');
  const listxattr = f('long listxattr(const uint8_t *path, uint8_t *buf, size_t n)');
  const removexattr = f('int removexattr(const uint8_t *path, const uint8_t *name)');
  const flock = f('int flock(int fd, int op)');
  const syncfs = f('int syncfs(int fd)');
  const fcntl = f('int fcntl(int fd, int cmd, uint8_t *arg)');
  const flk = Buffer.alloc(32);
  const setfsuid = f('int setfsuid(uint32_t uid)');
  const setfsgid = f('int setfsgid(uint32_t gid)');
  const close = f('int close(int fd)');
  const inotifyInit = f('int inotify_init1(int flags)');
  // ioctl is variadic: declared with the one argument type it is called with here.
  const ioctlPtr = f('int ioctl(int fd, unsigned long req, uint8_t *arg)');
  const flagsBuf = Buffer.alloc(8);
  const inotifyAddWatch = f('int inotify_add_watch(int fd, const uint8_t *path, uint32_t mask)');
  const inotifyRmWatch = f('int inotify_rm_watch(int fd, int wd)');
  const read = f('long read(int fd, uint8_t *buf, size_t n)');
  const err = () => -koffi.errno();
  const res = (r: number | bigint) => (Number(r) < 0 ? err() : Number(r));
  const how = Buffer.alloc(24);
  const st = Buffer.alloc(144);
  const sfs = Buffer.alloc(120);
  const times = Buffer.alloc(32);
  const offs = Buffer.alloc(16);
  return (fsCache = {
    openat2(dirfd, name, flags, mode, resolve) {
      how.writeBigUInt64LE(BigInt(flags), 0);
      how.writeBigUInt64LE(BigInt(mode), 8);
      how.writeBigUInt64LE(BigInt(resolve), 16);
      return res(openat2(SYS_openat2, dirfd, name, how, 24) as number);
    },
    fstatat(dirfd, name, flags, out) {
      if ((fstatat(dirfd, name, st, flags) as number) < 0) return err();
      out.dev = st.readBigUInt64LE(0);
      out.ino = st.readBigUInt64LE(8);
      out.nlink = Number(st.readBigUInt64LE(16));
      out.mode = st.readUInt32LE(24);
      out.uid = st.readUInt32LE(28);
      out.gid = st.readUInt32LE(32);
      out.rdev = st.readBigUInt64LE(40);
      out.size = Number(st.readBigInt64LE(48));
      out.blksize = Number(st.readBigInt64LE(56));
      out.blocks = Number(st.readBigInt64LE(64));
      out.atimeSec = Number(st.readBigInt64LE(72));
      out.atimeNsec = Number(st.readBigInt64LE(80));
      out.mtimeSec = Number(st.readBigInt64LE(88));
      out.mtimeNsec = Number(st.readBigInt64LE(96));
      out.ctimeSec = Number(st.readBigInt64LE(104));
      out.ctimeNsec = Number(st.readBigInt64LE(112));
      return 0;
    },
    mkdirat: (d, n, m) => res(mkdirat(d, n, m) as number),
    mknodat: (d, n, m, dev) => res(mknodat(d, n, m, dev) as number),
    symlinkat: (t, d, n) => res(symlinkat(t, d, n) as number),
    readlinkat: (d, n, b) => res(readlinkat(d, n, b, b.length) as number),
    unlinkat: (d, n, fl) => res(unlinkat(d, n, fl) as number),
    renameat2: (od, op, nd, np, fl) => res(renameat2(od, op, nd, np, fl) as number),
    linkat: (od, op, nd, np, fl) => res(linkat(od, op, nd, np, fl) as number),
    fchownat: (d, n, u, g, fl) => res(fchownat(d, n, u, g, fl) as number),
    fchmodat: (d, n, m, fl) => res(fchmodat(d, n, m, fl) as number),
    utimensat(d, n, a, m, fl) {
      times.writeBigInt64LE(BigInt(a.sec), 0);
      times.writeBigInt64LE(BigInt(a.nsec), 8);
      times.writeBigInt64LE(BigInt(m.sec), 16);
      times.writeBigInt64LE(BigInt(m.nsec), 24);
      return res(utimensat(d, n, times, fl) as number);
    },
    truncate: (p, s) => res(truncate(p, s) as number),
    ftruncate: (fd, s) => res(ftruncate(fd, s) as number),
    getdents64: (fd, b) => res(getdents(SYS_getdents64, fd, b, b.length) as number),
    lseek: (fd, o, w) => res(lseek(fd, typeof o === 'bigint' ? BigInt.asIntN(64, o) : o, w) as number | bigint),
    fstatfs(fd, out) {
      if ((fstatfs(fd, sfs) as number) < 0) return err();
      // struct statfs (x86_64): type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen, frsize.
      out.type = Number(sfs.readBigInt64LE(0) & 0xffffffffn);
      out.bsize = Number(sfs.readBigInt64LE(8));
      out.blocks = Number(sfs.readBigUInt64LE(16));
      out.bfree = Number(sfs.readBigUInt64LE(24));
      out.bavail = Number(sfs.readBigUInt64LE(32));
      out.files = Number(sfs.readBigUInt64LE(40));
      out.ffree = Number(sfs.readBigUInt64LE(48));
      out.namelen = Number(sfs.readBigInt64LE(64));
      out.frsize = Number(sfs.readBigInt64LE(72));
      return 0;
    },
    fallocate: (fd, m, o, l) => res(fallocate(fd, m, o, l) as number),
    copyFileRange(fi, oi, fo, oo, len, fl) {
      offs.writeBigInt64LE(BigInt(oi), 0);
      offs.writeBigInt64LE(BigInt(oo), 8);
      return res(cfr(fi, offs.subarray(0, 8), fo, offs.subarray(8, 16), len, fl) as number);
    },
    getxattr: (p, n, b) => res(getxattr(p, n, b, b ? b.length : 0) as number),
    setxattr: (p, n, v, fl) => res(setxattr(p, n, v, v.length, fl) as number),
    listxattr: (p, b) => res(listxattr(p, b, b ? b.length : 0) as number),
    removexattr: (p, n) => res(removexattr(p, n) as number),
    flock: (fd, op) => res(flock(fd, op) as number),
    // errno is the pool thread's, out of reach: a failure is reported as EIO.
    syncfs: (fd) => new Promise((resolve) => syncfs.async(fd, (e: unknown, r: number) => resolve(e || r < 0 ? -5 : 0))),
    fcntlLock(fd, cmd, lk) {
      // struct flock (x86_64): short type, short whence, off_t start, off_t len, pid_t pid.
      flk.fill(0);
      flk.writeInt16LE(lk.type, 0);
      flk.writeInt16LE(0, 2);
      flk.writeBigInt64LE(lk.start, 8);
      flk.writeBigInt64LE(lk.len, 16);
      if ((fcntl(fd, cmd, flk) as number) < 0) return err();
      lk.type = flk.readInt16LE(0);
      lk.start = flk.readBigInt64LE(8);
      lk.len = flk.readBigInt64LE(16);
      lk.pid = flk.readInt32LE(24);
      return 0;
    },
    setfsuid: (u) => setfsuid(u) as number,
    setfsgid: (g) => setfsgid(g) as number,
    close: (fd) => res(close(fd) as number),
    inotifyInit: () => res(inotifyInit(0o4000 /* IN_NONBLOCK */ | O_CLOEXEC) as number),
    inodeFlags(fd) {
      flagsBuf.fill(0);
      if ((ioctlPtr(fd, 0x80086601 /* FS_IOC_GETFLAGS */, flagsBuf) as number) < 0) return err();
      return flagsBuf.readInt32LE(0);
    },
    inotifyAddWatch: (fd, p, mask) => res(inotifyAddWatch(fd, p, mask) as number),
    inotifyRmWatch: (fd, wd) => res(inotifyRmWatch(fd, wd) as number),
    read: (fd, b) => res(read(fd, b, b.length) as number),
  });
}
