/**
 * The passthrough's data calls (read, write, fsync) in libuv's thread pool, so a slow
 * disk holds up only the requests waiting on it, never the supervisor's event loop.
 * Failures come back as FsErrors carrying the errno the guest gets.
 */
import { fsync as fsyncCb, fdatasync as fdatasyncCb, read as readCb, write as writeCb } from 'node:fs';
import { E } from './abi.js';
import { FsError } from './fs-error.js';

/** pread(2) of up to `size` bytes at `offset`: the bytes read. */
export function readAt(fd: number, size: number, offset: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  return new Promise((resolve, reject) =>
    readCb(fd, buf, 0, size, offset, (err, n) => (err ? reject(errnoError(err)) : resolve(buf.subarray(0, n)))),
  );
}

/** pwrite(2) of `data` at `offset`: how much was written. */
export function writeAt(fd: number, data: Buffer, offset: number): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    writeCb(fd, data, 0, data.length, offset, (err, n) => (err ? reject(errnoError(err)) : resolve(n))),
  );
}

/** fsync(2), or fdatasync(2) where `datasync`. */
export function syncFd(fd: number, datasync: boolean): Promise<void> {
  return new Promise((resolve, reject) => (datasync ? fdatasyncCb : fsyncCb)(fd, (err) => (err ? reject(errnoError(err)) : resolve())));
}

/** A Node fs error as an FsError with its errno. */
function errnoError(err: NodeJS.ErrnoException): FsError {
  return new FsError(typeof err.errno === 'number' ? Math.abs(err.errno) : E.EIO, err.message);
}
