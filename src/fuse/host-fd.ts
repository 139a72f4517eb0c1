/**
 * Small shared pieces for naming host files by descriptor: the /proc path of a
 * descriptor, a file's identity (st_dev, st_ino), and the flags every lookup opens with.
 */
import {
  AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, O_CLOEXEC, O_NOFOLLOW, O_PATH, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, type FsCalls, type Stat,
} from '../os/fs-calls.js';
import { check } from './fs-error.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;

/** How a name below a parent descriptor is opened: as an O_PATH handle, never following a last symlink. */
export const LOOKUP_FLAGS = O_PATH | O_NOFOLLOW | O_CLOEXEC;
/** openat2's resolve flags: nothing outside the root, no /proc magic links. */
export const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
/** The empty path of an AT_EMPTY_PATH call (one NUL). */
export const EMPTY = Buffer.alloc(1);

/** A zeroed Stat for the OS calls to fill. */
export const newStat = (): Stat => ({
  dev: 0n, ino: 0n, nlink: 0, mode: 0, uid: 0, gid: 0, rdev: 0n, size: 0, blksize: 0, blocks: 0,
  atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
});

/** The descriptor's /proc/self/fd link, NUL-terminated. */
export const procPath = (fd: number): Buffer => Buffer.from(`/proc/self/fd/${fd}\0`);

/** A host file's identity: every name of one file maps to one key. */
export const keyOf = (st: Stat): string => `${st.dev}:${st.ino}`;

/** The descriptor's own attributes (never a symlink's target), filled into `st`. */
export function statFd(os: FsCalls, fd: number, st = newStat()): Stat {
  check(os.fstatat(fd, EMPTY, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, st));
  return st;
}

