/**
 * The one koffi loader, for every OS call in src/os/ (the only place that may use koffi):
 * the page server's, sockets that carry file descriptors, epoll, pidfds, mmap, AF_VSOCK,
 * the volume server's *at() calls, libc.ts's and jail-ops.ts's. Synchronous, because worker threads and
 * hot loops call these without awaiting. Loaded on first use, so commands that never
 * need them never load the native addon.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import type { LibraryHandle } from 'koffi';

export type Koffi = typeof import('koffi');

let loaded: { koffi: Koffi; lib: LibraryHandle } | undefined;

/** koffi (its CommonJS entry) and libc, loaded on the first call. */
export function ffi(): { koffi: Koffi; lib: LibraryHandle } {
  if (!loaded) {
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    loaded = { koffi, lib: koffi.load('libc.so.6') };
  }
  return loaded;
}

let loadedAsync: { koffi: Koffi; lib: LibraryHandle } | undefined;

/**
 * koffi (its ES module entry) and libc, for the async binders (fs-calls.ts, libc.ts).
 * koffi ships separate CommonJS and ES module builds; which one each binder loads is
 * kept as it was, since the guest agent's (Node 18) use of the ES build is only proven
 * by VM runs.
 */
export async function ffiAsync(): Promise<{ koffi: Koffi; lib: LibraryHandle }> {
  if (!loadedAsync) {
    const koffi = ((await import('koffi')) as unknown as { default: Koffi }).default;
    loadedAsync = { koffi, lib: koffi.load('libc.so.6') };
  }
  return loadedAsync;
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
