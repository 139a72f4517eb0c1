/**
 * userfaultfd(2), as in /usr/include/linux/userfaultfd.h (x86_64). The page server uses
 * read/copy/zeropage/wake on a uffd a VMM handed it; tests and benchmarks also create,
 * set up and register one, as Firecracker does. Calls return a result or a negative
 * errno and never throw on the hot path: a fault costs one read and one ioctl.
 */
import { closeSync, openSync } from 'node:fs';
import { errno, ffi, getU64, osError, putU64 } from './ffi.js';

export const UFFD_API = 0xaa;
export const UFFD_FEATURE_EVENT_FORK = 1 << 1;
export const UFFD_FEATURE_EVENT_REMOVE = 1 << 3;
export const UFFD_EVENT_PAGEFAULT = 0x12;
export const UFFD_EVENT_FORK = 0x13;
export const UFFD_EVENT_REMAP = 0x14;
export const UFFD_EVENT_REMOVE = 0x15;
export const UFFD_EVENT_UNMAP = 0x16;
export const UFFD_PAGEFAULT_FLAG_WRITE = 1;
export const UFFDIO_REGISTER_MODE_MISSING = 1;
export const UFFD_USER_MODE_ONLY = 1;
/** Size of one struct uffd_msg. */
export const UFFD_MSG_SIZE = 32;

const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const NR_USERFAULTFD = 323;
const UFFDIO_API = 0xc018aa3f;
const UFFDIO_REGISTER = 0xc020aa00;
const UFFDIO_COPY = 0xc028aa03;
const UFFDIO_ZEROPAGE = 0xc020aa04;
const UFFDIO_WAKE = 0x8010aa02;
const USERFAULTFD_IOC_NEW = 0xaa00;

export interface UffdOps {
  /**
   * A new uffd, as Firecracker makes one: close-on-exec, non-blocking, and faults from
   * kernel mode too (KVM touches guest memory from the kernel). Through /dev/userfaultfd
   * where it exists, else the syscall. Throws with the errno.
   */
  create(opts?: { nonBlocking?: boolean; userModeOnly?: boolean }): number;
  /** UFFDIO_API: requires `features`; returns what the kernel granted. Throws. */
  api(fd: number, features: number): { features: number; ioctls: number };
  /** UFFDIO_REGISTER in MISSING mode. Throws. */
  register(fd: number, start: number, len: number): void;
  /** Reads uffd_msg records into `buf`: their count, or -errno (-EAGAIN when none). */
  read(fd: number, buf: Uint8Array): number;
  /**
   * UFFDIO_COPY of `len` bytes from our `src` address to the peer's `dst`: 0, or -errno
   * with the bytes copied before the error in `copied()`.
   */
  copy(fd: number, dst: number, src: number, len: number, wake: boolean): number;
  /** UFFDIO_ZEROPAGE: 0 or -errno. */
  zeropage(fd: number, dst: number, len: number, wake: boolean): number;
  /** UFFDIO_WAKE: 0 or -errno. */
  wake(fd: number, start: number, len: number): number;
  /** Bytes the last failed copy or zeropage did transfer before it failed. */
  copied(): number;
  close(fd: number): void;
}

let cached: UffdOps | undefined;

export function uffdOps(): UffdOps {
  if (cached) return cached;
  const { koffi, lib } = ffi();
  const ioctl = lib.func('int ioctl(int fd, unsigned long req, void *arg)');
  const ioctlInt = lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)');
  const read = lib.func('long read(int fd, void *buf, unsigned long n)');
  const close = lib.func('int close(int fd)');
  const syscall1 = lib.func('long syscall(long nr, ...)');
  // One argument block per call kind, reused: the hot path allocates nothing.
  const copyArg = new Uint32Array(10);
  const zeroArg = new Uint32Array(8);
  const wakeArg = new Uint32Array(4);
  let lastCopied = 0;
  const signed64 = (u32: Uint32Array, i: number) => u32[i]! + (u32[i + 1]! | 0) * 0x1_0000_0000;
  const fail = (): number => -koffi.errno();
  return (cached = {
    create(opts = {}) {
      const flags = O_CLOEXEC | (opts.nonBlocking === false ? 0 : O_NONBLOCK) | (opts.userModeOnly ? UFFD_USER_MODE_ONLY : 0);
      let dev: number | undefined;
      try {
        dev = openSync('/dev/userfaultfd', 'r+');
      } catch {
        // no device (kernels before 6.1) or no access: the syscall below
      }
      if (dev !== undefined) {
        try {
          const fd = ioctlInt(dev, USERFAULTFD_IOC_NEW, flags) as number;
          if (fd >= 0) return fd;
        } finally {
          closeSync(dev);
        }
      }
      const fd = Number(syscall1(NR_USERFAULTFD, 'int', flags));
      if (fd < 0) throw osError('userfaultfd', koffi.errno());
      return fd;
    },
    api(fd, features) {
      const arg = new Uint32Array(6);
      putU64(arg, 0, UFFD_API);
      putU64(arg, 2, features);
      if ((ioctl(fd, UFFDIO_API, arg) as number) !== 0) throw osError('ioctl(UFFDIO_API)', koffi.errno());
      return { features: getU64(arg, 2), ioctls: getU64(arg, 4) };
    },
    register(fd, start, len) {
      const arg = new Uint32Array(8);
      putU64(arg, 0, start);
      putU64(arg, 2, len);
      putU64(arg, 4, UFFDIO_REGISTER_MODE_MISSING);
      if ((ioctl(fd, UFFDIO_REGISTER, arg) as number) !== 0) throw osError('ioctl(UFFDIO_REGISTER)', koffi.errno());
    },
    read(fd, buf) {
      const n = Number(read(fd, buf, buf.byteLength - (buf.byteLength % UFFD_MSG_SIZE)));
      return n < 0 ? fail() : n / UFFD_MSG_SIZE;
    },
    copy(fd, dst, src, len, wake) {
      putU64(copyArg, 0, dst);
      putU64(copyArg, 2, src);
      putU64(copyArg, 4, len);
      copyArg[6] = wake ? 0 : 1;
      copyArg[7] = 0;
      copyArg[8] = 0;
      copyArg[9] = 0;
      if ((ioctl(fd, UFFDIO_COPY, copyArg) as number) === 0) return 0;
      const e = fail();
      const done = signed64(copyArg, 8);
      lastCopied = done > 0 ? done : 0;
      return e;
    },
    zeropage(fd, dst, len, wake) {
      putU64(zeroArg, 0, dst);
      putU64(zeroArg, 2, len);
      zeroArg[4] = wake ? 0 : 1;
      zeroArg[5] = 0;
      zeroArg[6] = 0;
      zeroArg[7] = 0;
      if ((ioctl(fd, UFFDIO_ZEROPAGE, zeroArg) as number) === 0) return 0;
      const e = fail();
      const done = signed64(zeroArg, 6);
      lastCopied = done > 0 ? done : 0;
      return e;
    },
    wake(fd, start, len) {
      putU64(wakeArg, 0, start);
      putU64(wakeArg, 2, len);
      return (ioctl(fd, UFFDIO_WAKE, wakeArg) as number) === 0 ? 0 : fail();
    },
    copied: () => lastCopied,
    close(fd) {
      close(fd);
    },
  });
}

export const EAGAIN = errno.EAGAIN;
export const EEXIST = errno.EEXIST;
export const ESRCH = errno.ESRCH;
export const ENOENT = errno.ENOENT;
