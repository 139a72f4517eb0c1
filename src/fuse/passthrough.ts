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
 * only the requests waiting on it (pool-io.ts).
 *
 * This class is the facade the session calls; the parts live beside it: inode-fds.ts
 * (the LRU of inode descriptors), xattrs.ts, set-attr.ts, caller-creds.ts (creating as
 * the guest caller), inodes.ts and locks.ts.
 */
import {
  AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_RDONLY,
  O_TRUNC, type FsCalls, type Stat, type StatFs,
} from '../os/fs-calls.js';
import { E } from './abi.js';
import { CallerCreds, type Caller } from './caller-creds.js';
import { check, FsError } from './fs-error.js';
import { BENEATH, EMPTY, keyOf, LOOKUP_FLAGS, newStat, procPath, statFd } from './host-fd.js';
import { InodeFds } from './inode-fds.js';
import { HandleTable, InodeTable, type Handle, type Inode } from './inodes.js';
import type { Owners } from './owners.js';
import { Locks, type FuseLock } from './locks.js';
import { killSuidSgid, setAttributes, type SetAttr } from './set-attr.js';
import { readAt, syncFd, writeAt } from './pool-io.js';
import { Xattrs } from './xattrs.js';

export type { Caller } from './caller-creds.js';
export type { SetAttr } from './set-attr.js';
export { newStat } from './host-fd.js';

/**
 * The guest's open flags the host open keeps: access mode, append, non-blocking, the
 * sync flags, truncation, large files. Not O_NOATIME (a rootless server may not), nor O_DIRECT (the server's buffers
 * are not aligned; the guest's own page cache is what O_DIRECT bypasses), nor create,
 * tty or the kernel's internal bits.
 */
const PASSED_OPEN_FLAGS = O_ACCMODE | O_APPEND | 0o4000 /* O_NONBLOCK */ | 0o4010000 /* O_SYNC, O_DSYNC */ | O_TRUNC | 0o100000; /* O_LARGEFILE */
/** The largest copy_file_range one request does (its reply is a u32; the caller loops). */
const MAX_COPY = 64 << 20;

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

export class Passthrough {
  readonly inodes: InodeTable;
  readonly handles: HandleTable;
  readonly locks: Locks;
  /** Which inodes hold a descriptor, within the limit. */
  private readonly fds: InodeFds;
  private readonly xattrs: Xattrs;
  private readonly creds: CallerCreds;
  private readonly limits: FdLimits;

  constructor(
    private readonly os: FsCalls,
    readonly opts: VolumeOptions,
  ) {
    const close = (fd: number) => void os.close(fd);
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.inodes = new InodeTable(close, (i) => this.fds.removed(i));
    this.fds = new InodeFds(os, this.inodes, this.limits.inodeFds);
    this.handles = new HandleTable(close, this.limits.handles);
    this.locks = new Locks(os, opts.readOnly, this.limits.lockOwners);
    this.creds = new CallerCreds(os, opts.owners.switchCreds);
    this.xattrs = new Xattrs(os, (nodeid) => this.node(nodeid), () => this.writable());
  }

  /** Opens the root directory; the server serves nothing outside it. */
  openRoot(hostPath: string): void {
    this.fds.openRoot(hostPath);
  }

  get root(): string {
    return this.fds.root;
  }

  /** The inode's O_PATH descriptor, reopened by path if it was closed (inode-fds.ts). */
  fdOf(i: Inode): number {
    return this.fds.fdOf(i);
  }

  /** The descriptor's path below the root (from its /proc link), or undefined. */
  pathOf(fd: number): string | undefined {
    return this.fds.pathOf(fd);
  }

  private node(nodeid: bigint): number {
    return this.fdOf(this.inodes.require(nodeid));
  }

  private writable(): void {
    if (this.opts.readOnly) throw new FsError(E.EROFS);
  }

  stat(fd: number, st = newStat()): Stat {
    return statFd(this.os, fd, st);
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
    this.fds.touch(inode);
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
    return setAttributes(this.os, this.node(nodeid), a, this.opts.owners, (fh) => {
      const h = this.handles.get(fh);
      return h && !h.dir && h.fd >= 0 && (h.flags & O_ACCMODE) !== O_RDONLY ? h.fd : undefined;
    });
  }

  /** Drops setuid/setgid as a write by a caller without CAP_FSETID does (set-attr.ts). */
  killSuidSgid(fd: number): Stat {
    return killSuidSgid(this.os, fd);
  }

  readlink(nodeid: bigint): Buffer {
    const buf = Buffer.allocUnsafe(4096);
    const n = check(this.os.readlinkat(this.node(nodeid), EMPTY, buf));
    return buf.subarray(0, n);
  }

  private created(parent: bigint, name: Buffer): { inode: Inode; st: Stat } {
    return this.lookup(parent, name);
  }

  mknod(parent: bigint, name: Buffer, mode: number, rdev: bigint, caller: Caller): { inode: Inode; st: Stat } {
    this.writable();
    const pfd = this.node(parent);
    this.creds.run(caller, () => {
      check(this.os.mknodat(pfd, name, mode, rdev));
      this.creds.restoreUmask(pfd, name, mode);
    });
    return this.created(parent, name);
  }

  mkdir(parent: bigint, name: Buffer, mode: number, caller: Caller): { inode: Inode; st: Stat } {
    this.writable();
    const pfd = this.node(parent);
    this.creds.run(caller, () => {
      check(this.os.mkdirat(pfd, name, mode & 0o7777));
      this.creds.restoreUmask(pfd, name, mode);
    });
    return this.created(parent, name);
  }

  symlink(parent: bigint, name: Buffer, target: Buffer, caller: Caller): { inode: Inode; st: Stat } {
    this.writable();
    const pfd = this.node(parent);
    this.creds.run(caller, () => check(this.os.symlinkat(target, pfd, name)));
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
    this.fds.renamed(pfd, name, nfd, newName, (flags & 2) !== 0);
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
    const hfd = this.creds.run(caller, () => {
      const fd = check(this.os.openat2(pfd, name, this.openFlags(flags) | O_CREAT | (flags & O_EXCL) | O_NOFOLLOW, mode & 0o7777, BENEATH));
      this.creds.restoreUmask(pfd, name, mode);
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
    return this.handles.using(h, () => readAt(fd, size, offset));
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
      const written = await writeAt(fd, data, offset);
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
    return this.handles.using(h, () => syncFd(fd, datasync));
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

  getxattr(nodeid: bigint, name: Buffer, size: number): number | Buffer {
    return this.xattrs.get(nodeid, name, size);
  }

  listxattr(nodeid: bigint, size: number): number | Buffer {
    return this.xattrs.list(nodeid, size);
  }

  setxattr(nodeid: bigint, name: Buffer, value: Buffer, flags: number): void {
    this.xattrs.set(nodeid, name, value, flags);
  }

  removexattr(nodeid: bigint, name: Buffer): void {
    this.xattrs.remove(nodeid, name);
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
