/**
 * libc calls Node lacks, for the CLI and the guest agent: pseudo-terminals, flock and a
 * restored guest's clock, randomness and its container's host name. Bound through ffi.ts's ffiAsync, which loads
 * koffi on first use, so programs that never need them (most CLI commands) never load it.
 */
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { ffiAsync, osError } from './ffi.js';

const O_RDWR = 0o2;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const TIOCSWINSZ = 0x5414;
const TIOCGPTPEER = 0x5441;

/** Pseudo-terminal calls: open a master, name its slave, set its window size. */
export interface PtyOps {
  openMaster(): { fd: number; slavePath: string };
  /**
   * A new terminal of the devpts instance whose ptmx is `ptmx` (another mount namespace's,
   * through /proc/PID/root): its master and its slave, the slave opened from the master
   * (TIOCGPTPEER), with no path lookup in this namespace. Both close-on-exec.
   */
  openPair(ptmx: string): { master: number; slave: number };
  setWindowSize(fd: number, cols: number, rows: number): void;
  /** cfmakeraw on the terminal `fd`: no echo, no line editing, no output translation. */
  makeRaw(fd: number): void;
}

let ptyOpsCache: PtyOps | undefined;

export async function ptyOps(): Promise<PtyOps> {
  if (ptyOpsCache) return ptyOpsCache;
  const { koffi, lib } = await ffiAsync();
  const winsize = koffi.struct('fcvm_winsize', { ws_row: 'uint16_t', ws_col: 'uint16_t', ws_xpixel: 'uint16_t', ws_ypixel: 'uint16_t' });
  const posix_openpt = lib.func('int posix_openpt(int flags)');
  const grantpt = lib.func('int grantpt(int fd)');
  const unlockpt = lib.func('int unlockpt(int fd)');
  const ptsname_r = lib.func('int ptsname_r(int fd, _Out_ uint8_t *buf, size_t buflen)');
  const ioctl_winsize = lib.func('int ioctl(int fd, unsigned long request, const fcvm_winsize *ws)');
  const ioctl_int = lib.func('ioctl', 'int', ['int', 'unsigned long', 'int']);
  const close = lib.func('int close(int fd)');
  // struct termios is handled as opaque bytes (60 on Linux); libc edits it.
  const tcgetattr = lib.func('int tcgetattr(int fd, _Out_ uint8_t *termios)');
  const tcsetattr = lib.func('int tcsetattr(int fd, int actions, const uint8_t *termios)');
  const cfmakeraw = lib.func('void cfmakeraw(_Inout_ uint8_t *termios)');
  void winsize;
  return (ptyOpsCache = {
    openMaster() {
      // Close-on-exec: a master a child inherits keeps its terminal from ever hanging up.
      const fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC) as number;
      if (fd < 0) throw new Error('posix_openpt failed');
      if ((grantpt(fd) as number) !== 0 || (unlockpt(fd) as number) !== 0) throw new Error('grantpt/unlockpt failed');
      const buf = Buffer.alloc(128);
      if ((ptsname_r(fd, buf, buf.length) as number) !== 0) throw new Error('ptsname_r failed');
      return { fd, slavePath: buf.toString('utf8', 0, buf.indexOf(0)) };
    },
    openPair(ptmx) {
      const master = openSync(ptmx, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
      try {
        if ((unlockpt(master) as number) !== 0) throw new Error(`unlockpt on ${ptmx} failed`);
        const slave = ioctl_int(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC) as number;
        if (slave < 0) throw new Error(`ioctl(TIOCGPTPEER) on ${ptmx} failed (errno ${koffi.errno()})`);
        return { master, slave };
      } catch (e) {
        close(master);
        throw e;
      }
    },
    setWindowSize(fd, cols, rows) {
      if ((ioctl_winsize(fd, TIOCSWINSZ, { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }) as number) !== 0) {
        throw new Error('ioctl(TIOCSWINSZ) failed');
      }
    },
    makeRaw(fd) {
      const t = Buffer.alloc(128);
      if ((tcgetattr(fd, t) as number) !== 0) throw new Error('tcgetattr failed');
      cfmakeraw(t);
      if ((tcsetattr(fd, 0, t) as number) !== 0) throw new Error('tcsetattr failed');
    },
  });
}

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/** flock(2): advisory file locks that the kernel drops when their holder dies. */
export interface FileLockOps {
  /** Tries to take an exclusive lock without blocking; false if another holds it. */
  tryLockExclusive(fd: number): boolean;
  unlock(fd: number): void;
}

let flockCache: FileLockOps | undefined;

export async function fileLockOps(): Promise<FileLockOps> {
  if (flockCache) return flockCache;
  const { lib } = await ffiAsync();
  const flock = lib.func('int flock(int fd, int operation)');
  return (flockCache = {
    tryLockExclusive: (fd) => (flock(fd, LOCK_EX | LOCK_NB) as number) === 0,
    unlock: (fd) => void flock(fd, LOCK_UN),
  });
}

const CLOCK_REALTIME = 0;
const O_RDONLY = 0;
const CLONE_NEWUTS = 0x04000000;
const HOST_NAME_MAX = 64;
/** _IO('R', 0x07): make the kernel's CRNG reseed from its input pool now. */
const RNDRESEEDCRNG = 0x5207;

/** What a restored guest needs: a right clock and fresh randomness, without a process. */
export interface RestoreOps {
  /** clock_settime(CLOCK_REALTIME). */
  setRealtime(ms: number): void;
  /** Mixes `seed` into the kernel's pool (a write to /dev/urandom) and forces a reseed. */
  reseedRandom(urandomFd: number, seed: Buffer): void;
  /**
   * Renames the host in process `pid`'s UTS namespace from `from` to `to`, and only if it
   * is `from`; this thread enters its own namespace again after. Says whether it did.
   */
  renameHostOf(pid: number, from: string, to: string): boolean;
}

let restoreCache: RestoreOps | undefined;

export async function restoreOps(): Promise<RestoreOps> {
  if (restoreCache) return restoreCache;
  const { koffi, lib } = await ffiAsync();
  const timespec = koffi.struct('fcvm_timespec', { tv_sec: 'int64_t', tv_nsec: 'long' });
  const clock_settime = lib.func('int clock_settime(int clk, const fcvm_timespec *tp)');
  const write = lib.func('long write(int fd, const uint8_t *buf, size_t n)');
  const ioctl = lib.func('int ioctl(int fd, unsigned long request)');
  const setns = lib.func('int setns(int fd, int nstype)');
  const gethostname = lib.func('int gethostname(_Out_ uint8_t *name, size_t len)');
  const sethostname = lib.func('int sethostname(const uint8_t *name, size_t len)');
  void timespec;
  return (restoreCache = {
    setRealtime(ms) {
      // Whole nanoseconds first: rounding the fraction alone could give 1e9 (EINVAL).
      const ns = BigInt(Math.floor(ms * 1e6));
      if ((clock_settime(CLOCK_REALTIME, { tv_sec: Number(ns / 1_000_000_000n), tv_nsec: Number(ns % 1_000_000_000n) }) as number) !== 0) {
        throw new Error('clock_settime failed');
      }
    },
    reseedRandom(fd, seed) {
      if ((write(fd, seed, seed.length) as number) !== seed.length) throw new Error('write to /dev/urandom failed');
      if ((ioctl(fd, RNDRESEEDCRNG) as number) !== 0) throw new Error('ioctl(RNDRESEEDCRNG) failed');
    },
    renameHostOf(pid, from, to) {
      const own = openSync('/proc/thread-self/ns/uts', O_RDONLY | O_CLOEXEC);
      let theirs: number | undefined;
      try {
        theirs = openSync(`/proc/${pid}/ns/uts`, O_RDONLY | O_CLOEXEC);
        if ((setns(theirs, CLONE_NEWUTS) as number) !== 0) throw osError('setns', koffi.errno());
        try {
          const buf = Buffer.alloc(HOST_NAME_MAX + 1);
          if ((gethostname(buf, buf.length) as number) !== 0) throw osError('gethostname', koffi.errno());
          if (buf.subarray(0, buf.indexOf(0)).toString() !== from) return false;
          const name = Buffer.from(to);
          if ((sethostname(name, name.length) as number) !== 0) throw osError('sethostname', koffi.errno());
          return true;
        } finally {
          // Processes this thread starts later must not be born in the container's
          // namespace, nor the VM's next rename go to the container: better no agent.
          if ((setns(own, CLONE_NEWUTS) as number) !== 0) {
            process.stderr.write(`fcvm-agent: fatal: ${osError('setns back to the agent\'s own UTS namespace', koffi.errno()).message}\n`);
            process.abort();
          }
        }
      } finally {
        closeSync(own);
        if (theirs !== undefined) closeSync(theirs);
      }
    },
  });
}
