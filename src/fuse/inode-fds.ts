/**
 * Which inodes hold an O_PATH descriptor. A guest may keep far more inodes cached than
 * the supervisor may hold descriptors (its RLIMIT_NOFILE is shared by all its volumes),
 * so beyond the limit the least recently used are closed and remembered by their path
 * below the root; the next use reopens one by that path and checks that it is still the
 * same file (st_dev, st_ino). Renames keep the remembered paths right.
 */
import { AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, O_CLOEXEC, O_DIRECTORY, O_PATH, type FsCalls } from '../os/fs-calls.js';
import { E } from './abi.js';
import { check, FsError } from './fs-error.js';
import { BENEATH, EMPTY, keyOf, LOOKUP_FLAGS, newStat, procPath, statFd } from './host-fd.js';
import type { Inode, InodeTable } from './inodes.js';

export class InodeFds {
  /** Inodes holding a descriptor, least recently used first (the root is not in it). */
  private readonly open = new Map<bigint, Inode>();
  private rootPath = '';

  constructor(
    private readonly os: FsCalls,
    private readonly inodes: InodeTable,
    /** O_PATH descriptors this volume may hold. */
    private readonly max: number,
    /** An inode was opened again by its path (restored from a snapshot, or evicted), with its mode. */
    private readonly reopened: (i: Inode, mode: number) => void = () => {},
  ) {}

  /** Opens the root directory; the server serves nothing outside it. */
  openRoot(hostPath: string): void {
    const fd = check(this.os.openat2(AT_FDCWD, Buffer.from(`${hostPath}\0`), O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0), `open ${hostPath}`);
    this.inodes.setRoot(fd, keyOf(statFd(this.os, fd)));
    // As /proc shows it, which is how descriptors' paths are read back.
    const buf = Buffer.allocUnsafe(4096);
    const n = this.os.readlinkat(AT_FDCWD, procPath(fd), buf);
    this.rootPath = n > 0 ? buf.subarray(0, n).toString('latin1') : hostPath;
  }

  /** The root's host path, as /proc shows it. */
  get root(): string {
    return this.rootPath;
  }

  /** The inode went (its lookup count reached zero): it no longer counts against the limit. */
  removed(i: Inode): void {
    this.open.delete(i.nodeid);
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
    this.reopened(i, st.mode);
    return fd;
  }

  /** Marks `i` used; closes the least recently used descriptors beyond the limit. */
  touch(i: Inode): void {
    if (i.nodeid === 1n) return;
    this.open.delete(i.nodeid);
    this.open.set(i.nodeid, i);
    if (this.open.size <= this.max) return;
    // A few at a time; those that cannot be found again by path (deleted, moved out) stay open.
    let tries = 0;
    for (const old of this.open.values()) {
      if (this.open.size <= this.max || ++tries > 8) break;
      if (old === i) continue;
      this.open.delete(old.nodeid);
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

  /** Keeps the paths of closed (evicted) inodes at and below a renamed name right. */
  renamed(pfd: number, name: Buffer, nfd: number, newName: Buffer, exchange: boolean): void {
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
}
