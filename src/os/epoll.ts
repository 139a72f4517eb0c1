/**
 * epoll(7) and eventfd(2), for the page server's worker threads: one blocking wait over
 * every uffd, listening socket and pidfd a worker owns, woken by an eventfd when the
 * main thread has news for it.
 */
import { ffi, osError } from './ffi.js';

export const EPOLLIN = 0x001;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
/** struct epoll_event is packed on x86_64: u32 events, u64 data. */
const EVENT_SIZE = 12;

export interface EpollOps {
  create(): number;
  /** Watches `fd` for `events`; `tag` comes back with each of its events. */
  add(ep: number, fd: number, events: number, tag: number): void;
  remove(ep: number, fd: number): void;
  /**
   * Waits up to `timeoutMs` (-1: forever). Fills `out` with [events, tag] pairs and
   * returns how many, or -errno (-EINTR when a signal came).
   */
  wait(ep: number, out: Uint32Array, timeoutMs: number): number;
  eventfd(): number;
  /** Adds 1 to the eventfd's counter, which wakes a waiter. */
  signal(efd: number): void;
  /** Resets the eventfd's counter. */
  drain(efd: number): void;
  close(fd: number): void;
}

let cached: EpollOps | undefined;

export function epollOps(): EpollOps {
  if (cached) return cached;
  const { koffi, lib } = ffi();
  const create1 = lib.func('int epoll_create1(int flags)');
  const ctl = lib.func('int epoll_ctl(int ep, int op, int fd, void *ev)');
  const wait = lib.func('int epoll_wait(int ep, void *events, int max, int timeout)');
  const eventfd = lib.func('int eventfd(unsigned int initval, int flags)');
  const write = lib.func('long write(int fd, void *buf, unsigned long n)');
  const read = lib.func('long read(int fd, void *buf, unsigned long n)');
  const close = lib.func('int close(int fd)');
  const ev = Buffer.alloc(EVENT_SIZE);
  const one = Buffer.alloc(8);
  one.writeUInt32LE(1, 0);
  const sink = Buffer.alloc(8);
  let raw = Buffer.alloc(EVENT_SIZE * 64);
  return (cached = {
    create() {
      const fd = create1(EPOLL_CLOEXEC) as number;
      if (fd < 0) throw osError('epoll_create1', koffi.errno());
      return fd;
    },
    add(ep, fd, events, tag) {
      ev.writeUInt32LE(events, 0);
      ev.writeUInt32LE(tag, 4);
      ev.writeUInt32LE(0, 8);
      if ((ctl(ep, EPOLL_CTL_ADD, fd, ev) as number) !== 0) throw osError('epoll_ctl(ADD)', koffi.errno());
    },
    remove(ep, fd) {
      ctl(ep, EPOLL_CTL_DEL, fd, null);
    },
    wait(ep, out, timeoutMs) {
      const max = Math.floor(out.length / 2);
      if (raw.length < max * EVENT_SIZE) raw = Buffer.alloc(max * EVENT_SIZE);
      const n = wait(ep, raw, max, timeoutMs) as number;
      if (n < 0) return -koffi.errno();
      for (let i = 0; i < n; i++) {
        out[2 * i] = raw.readUInt32LE(i * EVENT_SIZE);
        out[2 * i + 1] = raw.readUInt32LE(i * EVENT_SIZE + 4);
      }
      return n;
    },
    eventfd() {
      const fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) as number;
      if (fd < 0) throw osError('eventfd', koffi.errno());
      return fd;
    },
    signal(efd) {
      write(efd, one, 8);
    },
    drain(efd) {
      read(efd, sink, 8);
    },
    close(fd) {
      close(fd);
    },
  });
}
