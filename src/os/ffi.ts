/**
 * The synchronous koffi loader for the OS calls of the page server, sockets that carry
 * file descriptors, epoll, pidfds, mmap, FICLONE and AF_VSOCK (src/os/*). Synchronous,
 * because worker threads and hot loops call these without awaiting. Loaded on first use,
 * so commands that never need them never load the native addon.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import type { LibraryHandle } from 'koffi';

export type Koffi = typeof import('koffi');

let loaded: { koffi: Koffi; lib: LibraryHandle } | undefined;

export function ffi(): { koffi: Koffi; lib: LibraryHandle } {
  if (!loaded) {
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    loaded = { koffi, lib: koffi.load('libc.so.6') };
  }
  return loaded;
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** The errno name of a number ("EAGAIN"), or "errno N". */
export function errnoName(n: number): string {
  return ERRNO_NAMES.get(n) ?? `errno ${n}`;
}

/** An Error for a failed call, with `code` set to the errno name, as Node's own errors. */
export function osError(call: string, errno: number): NodeJS.ErrnoException {
  const code = errnoName(errno);
  return Object.assign(new Error(`${call} failed: ${code}`), { code, errno: -errno, syscall: call });
}

export const errno = constants.errno;

/** Splits a non-negative integer below 2^53 into the two little-endian 32-bit halves of a u64. */
export function putU64(u32: Uint32Array, index: number, v: number): void {
  u32[index] = v % 0x1_0000_0000;
  u32[index + 1] = Math.floor(v / 0x1_0000_0000);
}

/** Reads a u64 (below 2^53) from two 32-bit halves. */
export function getU64(u32: Uint32Array, index: number): number {
  return u32[index]! + u32[index + 1]! * 0x1_0000_0000;
}
