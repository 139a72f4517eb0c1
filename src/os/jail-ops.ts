/**
 * libc calls the VMM jail needs and Node lacks: device nodes for a jailed VMM, and a
 * sealed memfd, a file whose bytes no one can change any more, for clones' guest RAM.
 */
import { readdirSync } from 'node:fs';
import { ffiAsync } from './ffi.js';

const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const F_ADD_SEALS = 1033;
const F_GET_SEALS = 1034;
/** F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE */
export const ALL_SEALS = 0x1 | 0x2 | 0x4 | 0x8;
const F_SEAL_WRITE = 0x8;
const SEEK_SET = 0;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;
const S_IFCHR = 0o020000;

export interface JailOps {
  /** mknod(2) of a character device `major:minor` with permission bits `mode`. */
  mknodChar(path: string, major: number, minor: number, mode: number): void;
  /**
   * A new memfd of `size` bytes holding `fd`'s bytes (its data extents only: holes stay
   * holes, and cost no memory), sealed against any change. Returns the memfd.
   */
  sealedCopy(fd: number, size: number, name: string): number;
  /** True if `fd` is sealed against writes (a memfd made by sealedCopy). */
  isWriteSealed(fd: number): boolean;
  /**
   * Marks every fd of this process above stderr close-on-exec: fds fcvm inherited from
   * whoever started it (Node marks its own) must not reach a jailed VMM, where an fd of
   * a directory outside its root would be a way out. Passed fds are dup2'ed, which
   * clears the mark on the copy.
   */
  closeOnExecAll(): void;
}

let cache: JailOps | undefined;

export async function jailOps(): Promise<JailOps> {
  if (cache) return cache;
  const { koffi, lib } = await ffiAsync();
  const mknod = lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
  const memfd_create = lib.func('int memfd_create(const char *name, unsigned int flags)');
  const fcntl = lib.func('int fcntl(int fd, int cmd, ...)');
  const lseek = lib.func('int64_t lseek(int fd, int64_t offset, int whence)');
  const ftruncate = lib.func('int ftruncate(int fd, int64_t length)');
  const sendfile = lib.func('int64_t sendfile(int out_fd, int in_fd, void *offset, size_t count)');
  const close = lib.func('int close(int fd)');
  const fail = (what: string) => {
    const e = koffi.errno();
    return Object.assign(new Error(`${what} failed (errno ${e})`), { errno: e });
  };
  const seek = (fd: number, off: number, whence: number) => {
    const r = Number(lseek(fd, off, whence));
    if (r < 0) throw fail('lseek');
    return r;
  };
  return (cache = {
    mknodChar(path, major, minor, mode) {
      // glibc's makedev() for the dev_t.
      const dev = (BigInt(major & 0xfff) << 8n) | BigInt(minor & 0xff) | (BigInt(minor & ~0xff) << 12n) | (BigInt(major & ~0xfff) << 32n);
      if ((mknod(path, S_IFCHR | mode, dev) as number) !== 0) throw fail(`mknod ${path}`);
    },
    sealedCopy(fd, size, name) {
      const out = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING) as number;
      if (out < 0) throw fail('memfd_create');
      try {
        if ((ftruncate(out, size) as number) !== 0) throw fail('ftruncate');
        let pos = 0;
        while (pos < size) {
          const data = Number(lseek(fd, pos, SEEK_DATA));
          if (data < 0) {
            if (koffi.errno() === ENXIO) break; // only a hole is left
            throw fail('lseek(SEEK_DATA)');
          }
          const hole = Math.min(seek(fd, data, SEEK_HOLE), size);
          seek(fd, data, SEEK_SET);
          seek(out, data, SEEK_SET);
          for (let left = hole - data; left > 0; ) {
            const n = Number(sendfile(out, fd, null, Math.min(left, 1 << 30)));
            if (n <= 0) throw fail('sendfile');
            left -= n;
          }
          pos = hole;
        }
        if ((fcntl(out, F_ADD_SEALS, 'int', ALL_SEALS) as number) !== 0) throw fail('F_ADD_SEALS');
        return out;
      } catch (e) {
        close(out);
        throw e;
      }
    },
    closeOnExecAll() {
      for (const name of readdirSync('/proc/self/fd')) {
        const fd = Number(name);
        if (fd <= 2) continue;
        const flags = fcntl(fd, F_GETFD) as number;
        if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, 'int', flags | FD_CLOEXEC);
      }
    },
    isWriteSealed(fd) {
      const s = fcntl(fd, F_GET_SEALS) as number;
      return s >= 0 && (s & F_SEAL_WRITE) !== 0;
    },
  });
}
