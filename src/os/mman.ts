/**
 * mmap(2) and madvise(2): the page server maps the snapshot's memory file read-only
 * once and copies from it; tests map guest-like regions. Addresses are numbers (x86_64
 * user addresses are below 2^47).
 */
import { ffi, osError } from './ffi.js';

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MADV_DONTNEED = 4;
export const MADV_WILLNEED = 3;
const MAP_FAILED = 0xffffffffffffffffn;

export interface MmanOps {
  /** mmap(2); throws with the errno. */
  mmap(addr: number, len: number, prot: number, flags: number, fd: number, offset: number): number;
  munmap(addr: number, len: number): void;
  /** madvise(2); throws with the errno. */
  madvise(addr: number, len: number, advice: number): void;
  /** A view of mapped memory at `addr` (no copy). */
  view(addr: number, len: number): Uint8Array;
}

let cached: MmanOps | undefined;

export function mmanOps(): MmanOps {
  if (cached) return cached;
  const { koffi, lib } = ffi();
  const mmap = lib.func('void *mmap(void *addr, unsigned long len, int prot, int flags, int fd, int64_t off)');
  const munmap = lib.func('int munmap(void *addr, unsigned long len)');
  const madvise = lib.func('int madvise(void *addr, unsigned long len, int advice)');
  return (cached = {
    mmap(addr, len, prot, flags, fd, offset) {
      const p = mmap(addr === 0 ? null : BigInt(addr), len, prot, flags, fd, offset) as bigint;
      if (p === MAP_FAILED || p === null) throw osError('mmap', koffi.errno());
      return Number(p);
    },
    munmap(addr, len) {
      if ((munmap(BigInt(addr), len) as number) !== 0) throw osError('munmap', koffi.errno());
    },
    madvise(addr, len, advice) {
      if ((madvise(BigInt(addr), len, advice) as number) !== 0) throw osError('madvise', koffi.errno());
    },
    view: (addr, len) => new Uint8Array(koffi.view(BigInt(addr), len)),
  });
}
