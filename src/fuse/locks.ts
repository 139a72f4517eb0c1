/**
 * flock and POSIX record locks of one volume, held on the host, so the guest's locks
 * and the host's exclude each other.
 *   - flock: on the handle's own descriptor (one host open file description per guest
 *     open, as flock's semantics need).
 *   - POSIX locks belong to a process (the kernel's lock owner), not to a descriptor:
 *     each (inode, owner) gets a descriptor of its own with open-file-description locks
 *     on it (F_OFD_SETLK), closed when the owner closes any descriptor of the file
 *     (FLUSH), which is when POSIX drops a process's locks.
 * A blocking request (SETLKW) never blocks a thread: it retries a non-blocking one with
 * backoff until it succeeds, the guest interrupts it (EINTR), or the handle goes.
 */
import { F_OFD_GETLK, F_OFD_SETLK, O_CLOEXEC, O_RDONLY, O_RDWR, type FileLock, type FsCalls } from '../os/fs-calls.js';
import { E } from './abi.js';
import { check, FsError } from './fs-error.js';
import { openRegular } from './host-open.js';

export const FUSE_LK_FLOCK = 1;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const OFFSET_MAX = 0x7fffffffffffffffn;
const MAX_WAITERS = 1024;

/** fuse_file_lock: an inclusive byte range. */
export interface FuseLock {
  start: bigint;
  end: bigint;
  type: number;
  pid: number;
}

interface Waiter {
  cancel(errno: number): void;
  fh: bigint;
}

export class Locks {
  private readonly owners = new Map<string, number>();
  private readonly waiters = new Map<bigint, Waiter>();

  constructor(
    private readonly os: FsCalls,
    private readonly readOnly: boolean,
    private readonly maxOwners: number,
  ) {}

  /** The lock that would conflict with `lk`, or `lk` as F_UNLCK if none. */
  getlk(inodeFd: number, nodeid: bigint, owner: bigint, lk: FuseLock): FuseLock {
    const fd = this.ownerFd(inodeFd, nodeid, owner);
    const fl = toFlock(lk);
    check(this.os.fcntlLock(fd, F_OFD_GETLK, fl));
    if (fl.type === F_UNLCK) return { ...lk, type: F_UNLCK };
    return { start: fl.start, end: fl.len === 0n ? OFFSET_MAX : fl.start + fl.len - 1n, type: fl.type, pid: 0 };
  }

  /** Takes or drops a lock; with `wait`, until it is granted (or interrupted). */
  setlk(req: { unique: bigint; inodeFd: number; nodeid: bigint; fh: bigint; handleFd: number; owner: bigint; lk: FuseLock; flock: boolean; wait: boolean }): Promise<void> | void {
    const attempt = (): number => {
      if (req.flock) {
        const op = req.lk.type === F_UNLCK ? LOCK_UN : req.lk.type === F_WRLCK ? LOCK_EX : LOCK_SH;
        return this.os.flock(req.handleFd, op | LOCK_NB);
      }
      if (req.lk.type === F_UNLCK && !this.owners.has(`${req.nodeid}:${req.owner}`)) return 0;
      return this.os.fcntlLock(this.ownerFd(req.inodeFd, req.nodeid, req.owner), F_OFD_SETLK, toFlock(req.lk));
    };
    const r = attempt();
    if (r === 0) return;
    const busy = r === -E.EAGAIN || r === -E.EACCES;
    if (!busy || !req.wait) throw new FsError(busy ? E.EAGAIN : -r);
    if (this.waiters.size >= MAX_WAITERS) throw new FsError(E.ENOLCK);
    return new Promise<void>((resolve, reject) => {
      let delay = 5;
      let timer: NodeJS.Timeout;
      const done = (errno: number) => {
        clearTimeout(timer);
        this.waiters.delete(req.unique);
        if (errno === 0) resolve();
        else reject(new FsError(errno));
      };
      const retry = () => {
        const n = attempt();
        if (n === 0) return done(0);
        if (n !== -E.EAGAIN && n !== -E.EACCES) return done(-n);
        delay = Math.min(delay * 2, 100);
        timer = setTimeout(retry, delay);
      };
      this.waiters.set(req.unique, { fh: req.fh, cancel: done });
      timer = setTimeout(retry, delay);
    });
  }

  /** The guest interrupted request `unique` (a signal): a waiting lock ends with EINTR. */
  interrupt(unique: bigint): void {
    this.waiters.get(unique)?.cancel(E.EINTR);
  }

  /** The owner closed a descriptor of the file: POSIX drops all its locks on it. */
  flush(nodeid: bigint, owner: bigint): void {
    const key = `${nodeid}:${owner}`;
    const fd = this.owners.get(key);
    if (fd === undefined) return;
    this.owners.delete(key);
    this.os.close(fd);
  }

  /** A handle goes: its waiting locks end (its flock goes with its descriptor). */
  released(fh: bigint): void {
    for (const w of [...this.waiters.values()]) if (w.fh === fh) w.cancel(E.EBADF);
  }

  close(): void {
    for (const w of [...this.waiters.values()]) w.cancel(E.EIO);
    for (const fd of this.owners.values()) this.os.close(fd);
    this.owners.clear();
  }

  private ownerFd(inodeFd: number, nodeid: bigint, owner: bigint): number {
    const key = `${nodeid}:${owner}`;
    const known = this.owners.get(key);
    if (known !== undefined) return known;
    if (this.owners.size >= this.maxOwners) throw new FsError(E.ENOLCK);
    let fd: number;
    try {
      if (this.readOnly) throw new FsError(E.EROFS);
      fd = openRegular(this.os, inodeFd, O_RDWR | O_CLOEXEC, true);
    } catch (e) {
      if (!(e instanceof FsError) || e.errno === E.ENXIO) throw e;
      fd = openRegular(this.os, inodeFd, O_RDONLY | O_CLOEXEC, true);
    }
    this.owners.set(key, fd);
    return fd;
  }
}

function toFlock(lk: FuseLock): FileLock {
  if (lk.end < lk.start) throw new FsError(E.EINVAL);
  return { type: lk.type, start: lk.start, len: lk.end >= OFFSET_MAX ? 0n : lk.end - lk.start + 1n, pid: 0 };
}
