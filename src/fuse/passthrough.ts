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
  AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_RDONLY,
  O_TRUNC, type FsCalls, type Stat, type StatFs,
} from '../os/fs-calls.js';
import { E } from './abi.js';
import { CallerCreds, type Caller } from './caller-creds.js';
import { check, FsError } from './fs-error.js';
import { NO_WATCH, type ChangeWatch, type Mark } from './host-changes.js';
import { BENEATH, EMPTY, keyOf, LOOKUP_FLAGS, newStat, procPath, S_IFDIR, S_IFMT, statFd } from './host-fd.js';
import { hostOpenFlags, openNamedRegular, openRegular, PASSED_OPEN_FLAGS } from './host-open.js';
import { InodeFds } from './inode-fds.js';
import { HandleTable, InodeTable, type Handle, type Inode } from './inodes.js';
import { DEFAULT_LIMITS, type FdLimits, type VolumeOptions } from './volume-options.js';
import { Locks, type FuseLock } from './locks.js';
import { killSuidSgid, setAttributes, type SetAttr } from './set-attr.js';
import { readAt, syncFd, writeAt } from './pool-io.js';
import { Xattrs } from './xattrs.js';
import { HostRemoved } from './host-removed.js';

export type { Caller } from './caller-creds.js';
export type { SetAttr } from './set-attr.js';
export { newStat } from './host-fd.js';
export type { FdLimits, VolumeOptions } from './volume-options.js';

/** The largest copy_file_range one request does (its reply is a u32; the caller loops). */
const MAX_COPY = 64 << 20;

export class Passthrough {
  readonly inodes: InodeTable;
  readonly handles: HandleTable;
  readonly locks: Locks;
  /** Which inodes hold a descriptor, within the limit. */
  private readonly fds: InodeFds;
  /** Extended attributes (xattrs.ts). */
  readonly xattrs: Xattrs;
  private readonly creds: CallerCreds;
  private readonly limits: FdLimits;
  /** Host changes to the volume, watched so the guest may cache long (host-changes.ts). */
  private changes: ChangeWatch = NO_WATCH;
  /** Files the host replaced under the guest's cached names (host-removed.ts). */
  private readonly removed: HostRemoved;

  constructor(
    /** The OS calls; directory reading (dir-reader.ts) goes straight to them. */
    readonly os: FsCalls,
    readonly opts: VolumeOptions,
  ) {
    const close = (fd: number) => void os.close(fd);
    this.removed = new HostRemoved(os);
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.inodes = new InodeTable(close, (i) => {
      this.fds.removed(i);
      this.changes.unwatch(i.nodeid);
    });
    this.fds = new InodeFds(os, this.inodes, this.limits.inodeFds, (i, mode) => this.watchDir(i, mode));
    this.handles = new HandleTable(close, this.limits.handles);
    this.locks = new Locks(os, opts.readOnly, this.limits.lockOwners);
    this.creds = new CallerCreds(os, opts.owners.switchCreds);
    this.xattrs = new Xattrs(os, (nodeid) => this.node(nodeid), () => this.writable(), (nodeid, fn) => this.own([{ node: nodeid }], fn));
  }

  /** Opens the root directory; the server serves nothing outside it. */
  openRoot(hostPath: string): void {
    this.fds.openRoot(hostPath);
  }

  get root(): string {
    return this.fds.root;
  }

  /** Watches host changes from now on, starting with the root. */
  watchChanges(w: ChangeWatch): void {
    this.changes = w;
    const root = this.inodes.require(1n);
    w.watch(1n, root.fd);
  }

  /** True while every directory the guest knows is watched for host changes. */
  get watching(): boolean {
    return this.changes.watching;
  }

  private watchDir(i: Inode, mode: number): void {
    if ((mode & S_IFMT) === S_IFDIR && i.fd >= 0) this.changes.watch(i.nodeid, i.fd);
  }

  /** The known inode of `name` (NUL-terminated) in `dir`, without counting a lookup. */
  knownChild(dir: bigint, name: Buffer): bigint | undefined {
    try {
      const st = newStat();
      if (this.os.fstatat(this.node(dir), name, AT_SYMLINK_NOFOLLOW, st) < 0) return undefined;
      return this.inodes.byKey(keyOf(st))?.nodeid;
    } catch {
      return undefined;
    }
  }

  /** A change of the server's own: what it does is not reported back as a host change. */
  private own<T>(marks: readonly Mark[], fn: () => T): T {
    return this.changes.own(marks, fn);
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
    this.watchDir(inode, st.mode);
    return { inode, st };
  }

  forget(nodeid: bigint, n: bigint): void {
    this.inodes.forget(nodeid, n);
    if (!this.inodes.get(nodeid)) this.removed.forgotten(nodeid);
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
    return this.own([{ node: nodeid }], () => setAttributes(this.os, this.node(nodeid), a, this.opts.owners, (fh) => {
      const h = this.handles.get(fh);
      return h && !h.dir && h.fd >= 0 && (h.flags & O_ACCMODE) !== O_RDONLY ? h.fd : undefined;
    }));
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

  /** Makes `name` in `parent` as the guest caller (with `mode` after the guest's umask), and looks it up. */
  private make(parent: bigint, name: Buffer, caller: Caller, mode: number | undefined, call: (pfd: number) => number): { inode: Inode; st: Stat } {
    this.writable();
    const pfd = this.node(parent);
    this.own([{ dir: parent, name }], () => this.creds.run(caller, () => {
      check(call(pfd));
      if (mode !== undefined) this.creds.restoreUmask(pfd, name, mode);
    }));
    return this.lookup(parent, name);
  }

  /** Makes a file, FIFO, socket or device node; the host never opens the last three for the guest (host-open.ts). */
  mknod(parent: bigint, name: Buffer, mode: number, rdev: bigint, caller: Caller): { inode: Inode; st: Stat } {
    return this.make(parent, name, caller, mode, (pfd) => this.os.mknodat(pfd, name, mode, rdev));
  }

  mkdir(parent: bigint, name: Buffer, mode: number, caller: Caller): { inode: Inode; st: Stat } {
    return this.make(parent, name, caller, mode, (pfd) => this.os.mkdirat(pfd, name, mode & 0o7777));
  }

  symlink(parent: bigint, name: Buffer, target: Buffer, caller: Caller): { inode: Inode; st: Stat } {
    return this.make(parent, name, caller, undefined, (pfd) => this.os.symlinkat(target, pfd, name));
  }

  link(nodeid: bigint, newParent: bigint, name: Buffer): { inode: Inode; st: Stat } {
    this.writable();
    const fd = this.node(nodeid);
    const pfd = this.node(newParent);
    this.own([{ dir: newParent, name }, { node: nodeid }], () => {
      let r = this.os.linkat(fd, EMPTY, pfd, name, AT_EMPTY_PATH);
      // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the descriptor's /proc link does not.
      if (r === -E.ENOENT || r === -E.EPERM) r = this.os.linkat(AT_FDCWD, procPath(fd), pfd, name, 0x400 /* AT_SYMLINK_FOLLOW */);
      check(r);
    });
    return this.lookup(newParent, name);
  }

  unlink(parent: bigint, name: Buffer, dir: boolean): void {
    this.writable();
    const pfd = this.node(parent);
    const child = this.knownChild(parent, name);
    this.own([{ dir: parent, name }], () => check(this.os.unlinkat(pfd, name, dir ? AT_REMOVEDIR : 0)));
    this.removed.removedByGuest(child);
  }

  rename(parent: bigint, name: Buffer, newParent: bigint, newName: Buffer, flags: number): void {
    this.writable();
    // RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT
    if (flags & ~7) throw new FsError(E.EINVAL);
    const pfd = this.node(parent);
    const nfd = this.node(newParent);
    const replaced = flags & 2 ? undefined : this.knownChild(newParent, newName);
    this.own([{ dir: parent, name }, { dir: newParent, name: newName }], () => check(this.os.renameat2(pfd, name, nfd, newName, flags)));
    this.removed.removedByGuest(replaced);
    this.fds.renamed(pfd, name, nfd, newName, (flags & 2) !== 0);
  }

  private openFlags(flags: number): number {
    return hostOpenFlags(flags, this.opts.readOnly);
  }

  open(nodeid: bigint, flags: number, killSuidSgid = false): Handle {
    const fd = this.node(nodeid);
    const opened = () => {
      const hfd = openRegular(this.os, fd, this.openFlags(flags));
      if (killSuidSgid && flags & O_TRUNC) this.killSuidSgid(hfd);
      return hfd;
    };
    const hfd = flags & O_TRUNC ? this.own([{ node: nodeid }], opened) : opened();
    // The guest keeps its cached pages (the session answers KEEP_CACHE): host changes go first.
    this.changes.sync();
    if (this.removed.isStale(nodeid, hfd)) {
      this.os.close(hfd);
      throw new FsError(E.ESTALE);
    }
    return this.handles.add(nodeid, hfd, flags, false);
  }

  create(parent: bigint, name: Buffer, flags: number, mode: number, caller: Caller, killSuidSgid = false): { inode: Inode; st: Stat; handle: Handle } {
    this.writable();
    const pfd = this.node(parent);
    const hfd = this.own([{ dir: parent, name }], () => {
      const fd = this.creds.run(caller, () => {
        // Always exclusive: an existing name is opened as open() opens it, so a FIFO or a
        // device node under the name is refused instead of opened (host-open.ts).
        const made = this.os.openat2(pfd, name, this.openFlags(flags) | O_CREAT | O_EXCL | O_NOFOLLOW, mode & 0o7777, BENEATH);
        if (made === -E.EEXIST && !(flags & O_EXCL)) return openNamedRegular(this.os, pfd, name, this.openFlags(flags));
        check(made);
        this.creds.restoreUmask(pfd, name, mode);
        return made;
      });
      // An existing file truncated by a caller without CAP_FSETID.
      if (killSuidSgid && flags & O_TRUNC) this.killSuidSgid(fd);
      return fd;
    });
    let entry: { inode: Inode; st: Stat };
    try {
      entry = this.lookup(parent, name);
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
    h.fd = h.dir
      ? check(this.os.openat2(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0))
      : openRegular(this.os, this.fdOf(ino), (h.flags & PASSED_OPEN_FLAGS & ~O_TRUNC) | O_CLOEXEC);
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
    return this.handles.using(h, () => this.changes.ownAsync([{ node: h.nodeid }], async () => {
      const written = await writeAt(fd, data, offset);
      let st: Stat | undefined;
      try {
        st = killSuidSgid ? this.killSuidSgid(fd) : this.stat(fd);
      } catch {
        // The write happened; without attributes the guest asks for them itself.
      }
      return { written, st };
    }));
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
    this.handles.requireOf(fh, nodeid);
    return this.locks.getlk(this.node(nodeid), nodeid, owner, lk);
  }

  setlk(unique: bigint, nodeid: bigint, fh: bigint, owner: bigint, lk: FuseLock, flock: boolean, wait: boolean): Promise<void> | void {
    const h = this.handles.requireOf(fh, nodeid);
    const r = this.locks.setlk({ unique, inodeFd: this.node(nodeid), nodeid, fh, handleFd: this.handleFd(h), owner, lk, flock, wait });
    // A lock taken after a host process wrote and unlocked: the guest must read what it wrote.
    return r instanceof Promise ? r.then(() => this.changes.sync()) : this.changes.sync();
  }

  opendir(nodeid: bigint): Handle {
    const fd = this.node(nodeid);
    const dfd = check(this.os.openat2(fd, Buffer.from('.\0'), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0));
    return this.handles.add(nodeid, dfd, O_RDONLY | O_DIRECTORY, true);
  }

  statfs(nodeid: bigint): StatFs {
    const out: StatFs = { type: 0, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 0, namelen: 0, frsize: 0 };
    check(this.os.fstatfs(this.node(nodeid), out));
    return out;
  }

  fallocate(fh: bigint, mode: number, offset: number, length: number): void {
    this.writable();
    const fd = this.file(fh);
    this.own([{ node: this.handles.require(fh, false).nodeid }], () => check(this.os.fallocate(fd, mode, offset, length)));
  }

  lseek(fh: bigint, offset: number, whence: number): number {
    return check(this.os.lseek(this.file(fh), offset, whence));
  }

  copyFileRange(fhIn: bigint, offIn: number, fhOut: bigint, offOut: number, len: number, flags: number): number {
    this.writable();
    // FUSE file handles are table keys, never descriptors: both are looked up.
    const fin = this.file(fhIn);
    const fout = this.file(fhOut);
    const out = this.handles.require(fhOut, false).nodeid;
    return this.own([{ node: out }], () => check(this.os.copyFileRange(fin, offIn, fout, offOut, Math.min(len, MAX_COPY), flags)));
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

  /** Closes every descriptor: the server is going away. */
  close(): void {
    this.locks.close();
    this.handles.closeAll();
    this.inodes.closeAll();
  }
}
