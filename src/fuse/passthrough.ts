/**
 * The host side of one volume: a passthrough file system over a host directory, in the
 * manner of libfuse's passthrough_hp and fuse-backend-rs. Every operation is an *at()
 * call on a parent's O_PATH descriptor with one validated name component, opened with
 * openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS) and O_NOFOLLOW: no guest request can
 * reach outside the root, whatever symlinks, ".." or hard links the volume holds.
 * A read-only volume refuses every change with EROFS here, not only in the guest.
 *
 * Metadata calls are synchronous (microseconds each, on the supervisor's event loop);
 * data calls (read, write, fsync) go to libuv's thread pool, so a slow disk holds up
 * only the requests waiting on it.
 */
import { fsync as fsyncCb, fdatasync as fdatasyncCb, read as readCb, write as writeCb } from 'node:fs';
import {
  AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL,
  O_NOCTTY, O_NOFOLLOW, O_PATH, O_RDONLY, O_TRUNC, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, UTIME_NOW, UTIME_OMIT,
  type FsCalls, type Stat, type StatFs, type TimeSpec,
} from '../os/fs-calls.js';
import { E, FATTR, XATTR_CAPS } from './abi.js';
import { check, FsError } from './fs-error.js';
import { HandleTable, InodeTable, type Handle, type Inode } from './inodes.js';
import type { Owners } from './owners.js';
import { Locks, type FuseLock } from './locks.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;
/**
 * The guest's open flags the host open keeps: access mode, append, non-blocking, the
 * sync flags, truncation, large files. Not O_NOATIME (a rootless server may not), nor O_DIRECT (the server's buffers
 * are not aligned; the guest's own page cache is what O_DIRECT bypasses), nor create,
 * tty or the kernel's internal bits.
 */
const PASSED_OPEN_FLAGS = O_ACCMODE | O_APPEND | 0o4000 /* O_NONBLOCK */ | 0o4010000 /* O_SYNC, O_DSYNC */ | O_TRUNC | 0o100000; /* O_LARGEFILE */
const LOOKUP_FLAGS = O_PATH | O_NOFOLLOW | O_CLOEXEC;
const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
const EMPTY = Buffer.alloc(1);
/** The largest copy_file_range one request does (its reply is a u32; the caller loops). */
const MAX_COPY = 64 << 20;

export const newStat = (): Stat => ({
  dev: 0n, ino: 0n, nlink: 0, mode: 0, uid: 0, gid: 0, rdev: 0n, size: 0, blksize: 0, blocks: 0,
  atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
});

/** The guest caller of a request: whose file a create makes. */
export interface Caller {
  uid: number;
  gid: number;
}

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
 * Descriptors one volume may hold. The supervisor's RLIMIT_NOFILE is shared by all its
 * volumes and its own work, and a guest may keep far more inodes cached than that.
 */
export interface FdLimits {
  /** O_PATH descriptors of inodes; beyond this the least recently used are closed and reopened by path. */
  inodeFds: number;
  /** Open files and directories (guest opens); beyond this, EMFILE. */
  handles: number;
  /** POSIX lock owners' descriptors; beyond this, ENOLCK. */
  lockOwners: number;
}

export const DEFAULT_LIMITS: FdLimits = { inodeFds: 8192, handles: 4096, lockOwners: 512 };

export interface VolumeOptions {
  readOnly: boolean;
  owners: Owners;
  limits?: FdLimits;
}

const procPath = (fd: number) => Buffer.from(`/proc/self/fd/${fd}\0`);
const keyOf = (st: Stat) => `${st.dev}:${st.ino}`;

export class Passthrough {
  readonly inodes: InodeTable;
  readonly handles: HandleTable;
  readonly locks: Locks;
  private readonly umask = process.umask();
  private rootPath = '';
  /** Inodes holding a descriptor, least recently used first (the root is not in it). */
  private readonly openInodes = new Map<bigint, Inode>();
  private readonly limits: FdLimits;

  constructor(
    private readonly os: FsCalls,
    readonly opts: VolumeOptions,
  ) {
    const close = (fd: number) => void os.close(fd);
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.inodes = new InodeTable((fd) => void os.close(fd), (i) => this.openInodes.delete(i.nodeid));
    this.handles = new HandleTable(close, this.limits.handles);
    this.locks = new Locks(os, opts.readOnly, this.limits.lockOwners);
  }

  /** Opens the root directory; the server serves nothing outside it. */
  openRoot(hostPath: string): void {
    const fd = check(this.os.openat2(AT_FDCWD, Buffer.from(`${hostPath}\0`), O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0), `open ${hostPath}`);
    const st = newStat();
    check(this.os.fstatat(fd, EMPTY, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, st));
    this.inodes.setRoot(fd, keyOf(st));
    // As /proc shows it, which is how descriptors' paths are read back.
    const buf = Buffer.allocUnsafe(4096);
    const n = this.os.readlinkat(AT_FDCWD, procPath(fd), buf);
    this.rootPath = n > 0 ? buf.subarray(0, n).toString('latin1') : hostPath;
  }

  get root(): string {
    return this.rootPath;
  }

  /**
   * The inode's O_PATH descriptor. One closed to stay within the limit, or restored from
   * a snapshot, is reopened by its path below the root; an evicted one must still be the
   * same file (st_dev, st_ino), or it is stale.
   */
  fdOf(i: Inode): number {
    if (i.fd >= 0) {
      this.touch(i);
      return i.fd;
    }
    if (i.restorePath === undefined) throw new FsError(E.ESTALE);
    const root = this.inodes.require(1n);
    const fd = this.os.openat2(root.fd, Buffer.from(`${i.restorePath}\0`, 'latin1'), LOOKUP_FLAGS, 0, BENEATH);
    if (fd < 0) throw new FsError(E.ESTALE, `inode ${i.nodeid} (${i.restorePath}) is gone`);
    const st = newStat();
    this.os.fstatat(fd, EMPTY, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, st);
    if (i.key.startsWith('restored:')) this.inodes.rekey(i, keyOf(st));
    else if (i.key !== keyOf(st)) {
      this.os.close(fd);
      throw new FsError(E.ESTALE, `inode ${i.nodeid} (${i.restorePath}) is another file now`);
    }
    i.fd = fd;
    this.touch(i);
    return fd;
  }

  /** Marks `i` used; closes the least recently used descriptors beyond the limit. */
  private touch(i: Inode): void {
    if (i.nodeid === 1n) return;
    this.openInodes.delete(i.nodeid);
    this.openInodes.set(i.nodeid, i);
    if (this.openInodes.size <= this.limits.inodeFds) return;
    // A few at a time; those that cannot be found again by path (deleted, moved out) stay open.
    let tries = 0;
    for (const old of this.openInodes.values()) {
      if (this.openInodes.size <= this.limits.inodeFds || ++tries > 8) break;
      if (old === i) continue;
      this.openInodes.delete(old.nodeid);
      const path = this.pathOf(old.fd);
      if (path === undefined) continue;
      this.os.close(old.fd);
      old.fd = -1;
      old.restorePath = path;
    }
  }

  /** The descriptor's path below the root (from its /proc link), or undefined. */
  pathOf(fd: number): string | undefined {
    const buf = Buffer.allocUnsafe(4096);
    const n = this.os.readlinkat(AT_FDCWD, procPath(fd), buf);
    if (n <= 0) return undefined;
    const p = buf.subarray(0, n).toString('latin1');
    if (!p.startsWith(`${this.rootPath}/`) || p.endsWith(' (deleted)')) return undefined;
    return p.slice(this.rootPath.length + 1);
  }

  private node(nodeid: bigint): number {
    return this.fdOf(this.inodes.require(nodeid));
  }

  private writable(): void {
    if (this.opts.readOnly) throw new FsError(E.EROFS);
  }

  stat(fd: number, st = newStat()): Stat {
    check(this.os.fstatat(fd, EMPTY, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, st));
    return st;
  }

  /** Looks `name` up under `parent`: one lookup counted on the returned inode. */
  lookup(parent: bigint, name: Buffer): { inode: Inode; st: Stat } {
    const fd = check(this.os.openat2(this.node(parent), name, LOOKUP_FLAGS, 0, BENEATH));
    let st: Stat;
    try {
      st = this.stat(fd);
    } catch (e) {
      this.os.close(fd);
      throw e;
    }
    const inode = this.inodes.lookedUp(keyOf(st), fd);
    this.touch(inode);
    return { inode, st };
  }

  forget(nodeid: bigint, n: bigint): void {
    this.inodes.forget(nodeid, n);
  }

  getattr(nodeid: bigint, fh: bigint | undefined): Stat {
    const h = fh !== undefined ? this.handles.get(fh) : undefined;
    if (h && h.nodeid === nodeid && h.fd >= 0) {
      const st = newStat();
      check(this.os.fstatat(h.fd, EMPTY, AT_EMPTY_PATH, st));
      return st;
    }
    return this.stat(this.node(nodeid));
  }

  setattr(nodeid: bigint, a: SetAttr): Stat {
    this.writable();
    const fd = this.node(nodeid);
    const st = this.stat(fd);
    const isLink = (st.mode & S_IFMT) === S_IFLNK;
    if (a.valid & FATTR.MODE) {
      if (isLink) throw new FsError(E.EOPNOTSUPP);
      check(this.os.fchmodat(AT_FDCWD, procPath(fd), a.mode & 0o7777, 0));
    }
    if (a.valid & (FATTR.UID | FATTR.GID)) {
      const uid = a.valid & FATTR.UID ? this.opts.owners.hostUid(a.uid) : -1;
      const gid = a.valid & FATTR.GID ? this.opts.owners.hostGid(a.gid) : -1;
      if (uid === undefined || gid === undefined) throw new FsError(E.EPERM);
      check(this.os.fchownat(fd, EMPTY, uid >>> 0, gid >>> 0, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
    }
    if (a.valid & FATTR.SIZE) {
      const h = a.valid & FATTR.FH ? this.handles.get(a.fh) : undefined;
      if (h && !h.dir && h.fd >= 0 && (h.flags & O_ACCMODE) !== O_RDONLY) check(this.os.ftruncate(h.fd, a.size));
      else {
        if ((st.mode & S_IFMT) === S_IFDIR) throw new FsError(E.EISDIR);
        check(this.os.truncate(procPath(fd), a.size));
      }
    }
    if (a.valid & (FATTR.ATIME | FATTR.MTIME | FATTR.ATIME_NOW | FATTR.MTIME_NOW)) {
      const at = a.valid & FATTR.ATIME_NOW ? { sec: 0, nsec: UTIME_NOW } : a.valid & FATTR.ATIME ? a.atime : { sec: 0, nsec: UTIME_OMIT };
      const mt = a.valid & FATTR.MTIME_NOW ? { sec: 0, nsec: UTIME_NOW } : a.valid & FATTR.MTIME ? a.mtime : { sec: 0, nsec: UTIME_OMIT };
      check(this.os.utimensat(fd, EMPTY, at, mt, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
    }
    // HANDLE_KILLPRIV_V2: a chown, or a truncate by a caller without CAP_FSETID.
    if (a.valid & FATTR.KILL_SUIDGID && !isLink) return this.killSuidSgid(fd);
    return this.stat(fd);
  }

  /**
   * Drops setuid, and setgid where group-executable, as the kernel does when a caller
   * without CAP_FSETID writes or truncates a file (the guest kernel leaves it to us:
   * HANDLE_KILLPRIV_V2, and a root server's own writes never drop them). Returns the stat after.
   */
  killSuidSgid(fd: number): Stat {
    const st = this.stat(fd);
    const kill = (st.mode & S_ISUID) | ((st.mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) ? S_ISGID : 0);
    if ((st.mode & S_IFMT) === S_IFDIR || !kill) return st;
    check(this.os.fchmodat(AT_FDCWD, procPath(fd), st.mode & 0o7777 & ~kill, 0));
    return this.stat(fd, st);
  }

  readlink(nodeid: bigint): Buffer {
    const buf = Buffer.allocUnsafe(4096);
    const n = check(this.os.readlinkat(this.node(nodeid), EMPTY, buf));
    return buf.subarray(0, n);
  }

  /** Runs a create as the guest caller (root server), then sets the bits the host umask took. */
  private asCaller<T>(caller: Caller, fn: () => T): T {
    if (!this.opts.owners.switchCreds) return fn();
    this.os.setfsgid(caller.gid);
    this.os.setfsuid(caller.uid);
    try {
      return fn();
    } finally {
      this.os.setfsuid(0);
      this.os.setfsgid(0);
    }
  }

  /** Gives a new file the mode bits the server's umask took from it (the guest applied its own). */
  private restoreUmask(parent: number, name: Buffer, mode: number): void {
    const lost = mode & this.umask & 0o777;
    if (!lost) return;
    const st = newStat();
    if (this.os.fstatat(parent, name, AT_SYMLINK_NOFOLLOW, st) < 0 || (st.mode & S_IFMT) === S_IFLNK) return;
    this.os.fchmodat(parent, name, (st.mode & 0o7777) | lost, 0);
  }

  private created(parent: bigint, name: Buffer): { inode: Inode; st: Stat } {
    return this.lookup(parent, name);
  }

  mknod(parent: bigint, name: Buffer, mode: number, rdev: bigint, caller: Caller): { inode: Inode; st: Stat } {
    this.writable();
    const pfd = this.node(parent);
    this.asCaller(caller, () => {
      check(this.os.mknodat(pfd, name, mode, rdev));
      this.restoreUmask(pfd, name, mode);
    });
    return this.created(parent, name);
  }

  mkdir(parent: bigint, name: Buffer, mode: number, caller: Caller): { inode: Inode; st: Stat } {
    this.writable();
    const pfd = this.node(parent);
    this.asCaller(caller, () => {
      check(this.os.mkdirat(pfd, name, mode & 0o7777));
      this.restoreUmask(pfd, name, mode);
    });
    return this.created(parent, name);
  }

  symlink(parent: bigint, name: Buffer, target: Buffer, caller: Caller): { inode: Inode; st: Stat } {
    this.writable();
    const pfd = this.node(parent);
    this.asCaller(caller, () => check(this.os.symlinkat(target, pfd, name)));
    return this.created(parent, name);
  }

  link(nodeid: bigint, newParent: bigint, name: Buffer): { inode: Inode; st: Stat } {
    this.writable();
    const fd = this.node(nodeid);
    const pfd = this.node(newParent);
    let r = this.os.linkat(fd, EMPTY, pfd, name, AT_EMPTY_PATH);
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the descriptor's /proc link does not.
    if (r === -E.ENOENT || r === -E.EPERM) r = this.os.linkat(AT_FDCWD, procPath(fd), pfd, name, 0x400 /* AT_SYMLINK_FOLLOW */);
    check(r);
    return this.created(newParent, name);
  }

  unlink(parent: bigint, name: Buffer, dir: boolean): void {
    this.writable();
    check(this.os.unlinkat(this.node(parent), name, dir ? AT_REMOVEDIR : 0));
  }

  rename(parent: bigint, name: Buffer, newParent: bigint, newName: Buffer, flags: number): void {
    this.writable();
    // RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT
    if (flags & ~7) throw new FsError(E.EINVAL);
    const pfd = this.node(parent);
    const nfd = this.node(newParent);
    check(this.os.renameat2(pfd, name, nfd, newName, flags));
    this.renamed(pfd, name, nfd, newName, (flags & 2) !== 0);
  }

  /** Keeps the paths of closed (evicted) inodes at and below a renamed name right. */
  private renamed(pfd: number, name: Buffer, nfd: number, newName: Buffer, exchange: boolean): void {
    const evicted = [...this.inodes.all()].filter((i) => i.fd < 0 && i.restorePath !== undefined);
    if (evicted.length === 0) return;
    const join = (dir: string | undefined, n: Buffer) => (dir === undefined ? undefined : dir === '' ? n.subarray(0, -1).toString('latin1') : `${dir}/${n.subarray(0, -1).toString('latin1')}`);
    const from = join(this.dirPath(pfd), name);
    const to = join(this.dirPath(nfd), newName);
    if (from === undefined || to === undefined) return;
    const move = (p: string, a: string, b: string) => (p === a ? b : p.startsWith(`${a}/`) ? b + p.slice(a.length) : undefined);
    for (const i of evicted) {
      const p = i.restorePath!;
      const moved = move(p, from, to) ?? (exchange ? move(p, to, from) : undefined);
      if (moved !== undefined) i.restorePath = moved;
    }
  }

  /** A directory descriptor's path below the root: '' for the root itself. */
  private dirPath(fd: number): string | undefined {
    if (fd === this.inodes.require(1n).fd) return '';
    return this.pathOf(fd);
  }

  /** Host open flags for a guest open: no create, no controlling tty, no O_DIRECT alignment rules, close-on-exec. */
  private openFlags(flags: number): number {
    if (this.opts.readOnly && ((flags & O_ACCMODE) !== O_RDONLY || flags & (O_TRUNC | O_APPEND))) throw new FsError(E.EROFS);
    // Only flags that mean something on the host: openat2 refuses unknown bits with
    // EINVAL, and the kernel forwards some of its own (__FMODE_EXEC for execve).
    return (flags & PASSED_OPEN_FLAGS) | O_CLOEXEC;
  }

  open(nodeid: bigint, flags: number, killSuidSgid = false): Handle {
    const fd = this.node(nodeid);
    const hfd = check(this.os.openat2(AT_FDCWD, procPath(fd), this.openFlags(flags), 0, 0));
    if (killSuidSgid && flags & O_TRUNC) this.killSuidSgid(hfd);
    return this.handles.add(nodeid, hfd, flags, false);
  }

  create(parent: bigint, name: Buffer, flags: number, mode: number, caller: Caller, killSuidSgid = false): { inode: Inode; st: Stat; handle: Handle } {
    this.writable();
    const pfd = this.node(parent);
    const hfd = this.asCaller(caller, () => {
      const fd = check(this.os.openat2(pfd, name, this.openFlags(flags) | O_CREAT | (flags & O_EXCL) | O_NOFOLLOW, mode & 0o7777, BENEATH));
      this.restoreUmask(pfd, name, mode);
      return fd;
    });
    // An existing file truncated by a caller without CAP_FSETID.
    if (killSuidSgid && flags & O_TRUNC) this.killSuidSgid(hfd);
    let entry: { inode: Inode; st: Stat };
    try {
      entry = this.created(parent, name);
    } catch (e) {
      this.os.close(hfd);
      throw e;
    }
    return { ...entry, handle: this.handles.add(entry.inode.nodeid, hfd, flags, false) };
  }

  /** The handle's descriptor, reopening a restored one on first use. */
  handleFd(h: Handle): number {
    if (h.fd >= 0) return h.fd;
    const ino = this.inodes.require(h.nodeid);
    const path = procPath(this.fdOf(ino));
    const flags = h.dir ? O_RDONLY | O_DIRECTORY | O_CLOEXEC : (h.flags & PASSED_OPEN_FLAGS & ~O_TRUNC) | O_CLOEXEC;
    h.fd = check(this.os.openat2(AT_FDCWD, path, flags, 0, 0));
    return h.fd;
  }

  file(fh: bigint): number {
    return this.handleFd(this.handles.require(fh, false));
  }

  read(fh: bigint, offset: number, size: number): Promise<Buffer> {
    const h = this.handles.require(fh, false);
    const fd = this.handleFd(h);
    const buf = Buffer.allocUnsafe(size);
    return this.handles.using(h, () => new Promise((resolve, reject) =>
      readCb(fd, buf, 0, size, offset, (err, n) => (err ? reject(errnoError(err)) : resolve(buf.subarray(0, n)))),
    ));
  }

  /**
   * Writes, then returns how much was written and the file's attributes after it (the
   * guest drops its own on every write; the relay answers its next GETATTR from these).
   * `killSuidSgid`: the writer lacks CAP_FSETID (HANDLE_KILLPRIV_V2).
   */
  write(fh: bigint, offset: number, data: Buffer, killSuidSgid = false): Promise<{ written: number; st: Stat | undefined }> {
    this.writable();
    const h = this.handles.require(fh, false);
    const fd = this.handleFd(h);
    return this.handles.using(h, async () => {
      const written = await new Promise<number>((resolve, reject) =>
        writeCb(fd, data, 0, data.length, offset, (err, n) => (err ? reject(errnoError(err)) : resolve(n))),
      );
      let st: Stat | undefined;
      try {
        st = killSuidSgid ? this.killSuidSgid(fd) : this.stat(fd);
      } catch {
        // The write happened; without attributes the guest asks for them itself.
      }
      return { written, st };
    });
  }

  fsync(fh: bigint, datasync: boolean, dir: boolean): Promise<void> {
    const h = this.handles.require(fh, dir);
    const fd = this.handleFd(h);
    return this.handles.using(h, () => new Promise((resolve, reject) => (datasync ? fdatasyncCb : fsyncCb)(fd, (err) => (err ? reject(errnoError(err)) : resolve()))));
  }

  release(fh: bigint, dir: boolean): void {
    this.locks.released(fh);
    this.handles.release(fh, dir);
  }

  getlk(nodeid: bigint, fh: bigint, owner: bigint, lk: FuseLock): FuseLock {
    this.handles.require(fh, false);
    return this.locks.getlk(this.node(nodeid), nodeid, owner, lk);
  }

  setlk(unique: bigint, nodeid: bigint, fh: bigint, owner: bigint, lk: FuseLock, flock: boolean, wait: boolean): Promise<void> | void {
    const h = this.handles.require(fh, false);
    return this.locks.setlk({ unique, inodeFd: this.node(nodeid), nodeid, fh, handleFd: this.handleFd(h), owner, lk, flock, wait });
  }

  opendir(nodeid: bigint): Handle {
    const fd = this.node(nodeid);
    const dfd = check(this.os.openat2(fd, Buffer.from('.\0'), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0));
    return this.handles.add(nodeid, dfd, O_RDONLY | O_DIRECTORY, true);
  }

  statfs(nodeid: bigint): StatFs {
    const out: StatFs = { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 0, namelen: 0, frsize: 0 };
    check(this.os.fstatfs(this.node(nodeid), out));
    return out;
  }

  /** The path the xattr calls use: they have no *at() form (symlinks have no user xattrs). */
  private xattrPath(nodeid: bigint): Buffer {
    const fd = this.node(nodeid);
    if ((this.stat(fd).mode & S_IFMT) === S_IFLNK) throw new FsError(E.EOPNOTSUPP);
    return procPath(fd);
  }

  /**
   * security.capability is never shown: a host file's capabilities do not apply in the
   * guest (and the guest relay answers the kernel's question for it before each first
   * write itself, without asking).
   */
  getxattr(nodeid: bigint, name: Buffer, size: number): number | Buffer {
    const path = this.xattrPath(nodeid);
    if (name.toString('latin1') === XATTR_CAPS) throw new FsError(E.ENODATA);
    if (size === 0) return check(this.os.getxattr(path, name, null));
    const buf = Buffer.allocUnsafe(size);
    return buf.subarray(0, check(this.os.getxattr(path, name, buf)));
  }

  listxattr(nodeid: bigint, size: number): number | Buffer {
    const path = this.xattrPath(nodeid);
    // The whole list, without security.capability; its length is the answer to a size probe.
    let all: Buffer;
    for (;;) {
      const n = check(this.os.listxattr(path, null));
      all = Buffer.allocUnsafe(Math.max(n, 1));
      const r = this.os.listxattr(path, all);
      if (r === -E.ERANGE) continue;
      all = all.subarray(0, check(r));
      break;
    }
    const names = [];
    for (let at = 0; at < all.length; ) {
      const end = all.indexOf(0, at);
      const stop = end < 0 ? all.length : end + 1;
      if (all.subarray(at, stop - 1).toString('latin1') !== XATTR_CAPS) names.push(all.subarray(at, stop));
      at = stop;
    }
    const list = Buffer.concat(names);
    if (size === 0) return list.length;
    if (list.length > size) throw new FsError(E.ERANGE);
    return list;
  }

  setxattr(nodeid: bigint, name: Buffer, value: Buffer, flags: number): void {
    this.writable();
    refuseDangerousXattr(name);
    check(this.os.setxattr(this.xattrPath(nodeid), name, value, flags));
  }

  removexattr(nodeid: bigint, name: Buffer): void {
    this.writable();
    refuseDangerousXattr(name);
    check(this.os.removexattr(this.xattrPath(nodeid), name));
  }

  fallocate(fh: bigint, mode: number, offset: number, length: number): void {
    this.writable();
    check(this.os.fallocate(this.file(fh), mode, offset, length));
  }

  lseek(fh: bigint, offset: number, whence: number): number {
    return check(this.os.lseek(this.file(fh), offset, whence));
  }

  copyFileRange(fhIn: bigint, offIn: number, fhOut: bigint, offOut: number, len: number, flags: number): number {
    this.writable();
    // FUSE file handles are table keys, never descriptors: both are looked up.
    const fin = this.file(fhIn);
    const fout = this.file(fhOut);
    return check(this.os.copyFileRange(fin, offIn, fout, offOut, Math.min(len, MAX_COPY), flags));
  }

  /** The guest's sync(2)/syncfs(2): the host file system holding the volume. */
  async syncfs(): Promise<void> {
    // syncfs(2) needs an ordinary descriptor, not an O_PATH one.
    const fd = check(this.os.openat2(this.inodes.require(1n).fd, Buffer.from('.\0'), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0));
    try {
      check(await this.os.syncfs(fd));
    } finally {
      this.os.close(fd);
    }
  }

  /** Directory reading (dir-reader.ts) goes straight to the OS. */
  os_lseek(fd: number, offset: bigint, whence: number): number {
    return this.os.lseek(fd, offset, whence);
  }

  os_getdents(fd: number, buf: Buffer): number {
    return this.os.getdents64(fd, buf);
  }

  /** Closes every descriptor: the server is going away. */
  close(): void {
    this.locks.close();
    this.handles.closeAll();
    this.inodes.closeAll();
  }
}

/**
 * Guest root must not grant host privileges through the volume: file capabilities
 * (security.capability) and other security.* / trusted.* attributes are refused.
 */
function refuseDangerousXattr(name: Buffer): void {
  const s = name.toString('latin1');
  if (s.startsWith('security.') || s.startsWith('trusted.')) throw new FsError(E.EPERM, `xattr ${s} is refused`);
}

/** A Node fs error as an FsError with its errno. */
function errnoError(err: NodeJS.ErrnoException): FsError {
  return new FsError(typeof err.errno === 'number' ? Math.abs(err.errno) : E.EIO, err.message);
}
