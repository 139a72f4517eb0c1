/**
 * Stream sockets as raw file descriptors, for what Node's net module cannot do: receive
 * and send file descriptors (SCM_RIGHTS), ask who the peer is (SO_PEERCRED and
 * SO_PEERPIDFD), and be served from a worker's epoll loop. AF_UNIX here; AF_VSOCK
 * addresses in vsock.ts. And pipes, which Node's child_process makes as sockets.
 */
import { ffi, osError } from './ffi.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const O_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERPIDFD = 77;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_TRUNC = 0x20;
const MSG_CTRUNC = 0x08;
const SHUT_RDWR = 2;
/** Most descriptors one message may carry: more are closed and flagged. */
const MAX_FDS = 8;

/** What one recvmsg brought. */
export interface Received {
  bytes: Buffer;
  fds: number[];
  /** The data or the descriptors did not fit: the message is not whole. */
  truncated: boolean;
}

export interface FdSocketOps {
  /** A non-blocking listening AF_UNIX socket bound at `path` (which must not exist). Throws. */
  listenUnix(path: string, backlog: number): number;
  /** accept4: a non-blocking, close-on-exec connection, or -errno (-EAGAIN: none waiting). */
  accept(fd: number): number;
  /** A connected pair of close-on-exec AF_UNIX sockets; `nonBlocking` applies to both ends. Throws. */
  socketPair(type: 'stream' | 'seqpacket', nonBlocking: boolean): [number, number];
  /**
   * A close-on-exec pipe: [read end, write end]. A process's stdout and stderr must be
   * pipes, not sockets, or it cannot open /dev/stdout (ENXIO), as nginx's official image
   * does for its logs. Throws.
   */
  pipe(): [number, number];
  /** A blocking connected AF_UNIX socket. Throws. */
  connectUnix(path: string): number;
  /** One recvmsg of at most `max` bytes with SCM_RIGHTS: the bytes and descriptors, or -errno. */
  recv(fd: number, max: number): Received | number;
  /** One sendmsg of `data` with `fds` attached; throws. */
  send(fd: number, data: Uint8Array, fds: readonly number[]): void;
  /** SO_PEERCRED: the peer's pid, uid, gid when it connected. */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** SO_PEERPIDFD (Linux 6.5): a pidfd of the peer, or -errno (-ENOPROTOOPT on older kernels). */
  peerPidfd(fd: number): number;
  shutdown(fd: number): void;
  close(fd: number): void;
}

let cached: FdSocketOps | undefined;

/** struct sockaddr_un for `path`. */
function sockaddrUn(path: string): Buffer {
  const p = Buffer.from(path);
  if (p.length >= 108) throw Object.assign(new Error(`socket path is too long (${p.length} bytes, at most 107): ${path}`), { code: 'ENAMETOOLONG' });
  const a = Buffer.alloc(110);
  a.writeUInt16LE(AF_UNIX, 0);
  p.copy(a, 2);
  return a;
}

export function fdSocketOps(): FdSocketOps {
  if (cached) return cached;
  const { koffi, lib } = ffi();
  const socket = lib.func('int socket(int domain, int type, int proto)');
  const socketpair = lib.func('int socketpair(int domain, int type, int proto, void *sv)');
  const bind = lib.func('int bind(int fd, void *addr, unsigned int len)');
  const listen = lib.func('int listen(int fd, int backlog)');
  const connect = lib.func('int connect(int fd, void *addr, unsigned int len)');
  const accept4 = lib.func('int accept4(int fd, void *addr, void *len, int flags)');
  const recvmsg = lib.func('long recvmsg(int fd, void *msg, int flags)');
  const sendmsg = lib.func('long sendmsg(int fd, void *msg, int flags)');
  const getsockopt = lib.func('int getsockopt(int fd, int level, int name, void *val, void *len)');
  const shutdown = lib.func('int shutdown(int fd, int how)');
  const pipe2 = lib.func('int pipe2(void *fds, int flags)');
  const close = lib.func('int close(int fd)');

  // A native scratch area for msghdr, iovec, control and data: msghdr holds pointers,
  // so it must point at memory whose address we know.
  const CONTROL = 16 + MAX_FDS * 4 + 8;
  const DATA_MAX = 1 << 16;
  const size = 56 + 16 + CONTROL + DATA_MAX;
  const base = koffi.alloc('uint8_t', size) as bigint;
  const mem = Buffer.from(koffi.view(base, size));
  const at = (off: number) => base + BigInt(off);
  const MSG = 0;
  const IOV = 56;
  const CTL = 72;
  const DATA = 72 + CONTROL;
  const setPtr = (off: number, p: bigint) => mem.writeBigUInt64LE(p, off);
  const setMsg = (dataLen: number, ctlLen: number) => {
    mem.fill(0, MSG, DATA);
    setPtr(MSG + 16, at(IOV)); // msg_iov
    mem.writeBigUInt64LE(1n, MSG + 24); // msg_iovlen
    setPtr(MSG + 32, ctlLen > 0 ? at(CTL) : 0n); // msg_control
    mem.writeBigUInt64LE(BigInt(ctlLen), MSG + 40); // msg_controllen
    setPtr(IOV, at(DATA));
    mem.writeBigUInt64LE(BigInt(dataLen), IOV + 8);
  };

  return (cached = {
    listenUnix(path, backlog) {
      const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
      if (fd < 0) throw osError('socket', koffi.errno());
      const addr = sockaddrUn(path);
      if ((bind(fd, addr, addr.length) as number) !== 0 || (listen(fd, backlog) as number) !== 0) {
        const e = koffi.errno();
        close(fd);
        throw osError(`bind/listen ${path}`, e);
      }
      return fd;
    },
    accept(fd) {
      const c = accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC) as number;
      return c < 0 ? -koffi.errno() : c;
    },
    socketPair(type, nonBlocking) {
      const sv = Buffer.alloc(8);
      const t = (type === 'stream' ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0);
      if ((socketpair(AF_UNIX, t, 0, sv) as number) !== 0) throw osError('socketpair', koffi.errno());
      return [sv.readInt32LE(0), sv.readInt32LE(4)];
    },
    pipe() {
      const fds = Buffer.alloc(8);
      if ((pipe2(fds, O_CLOEXEC) as number) !== 0) throw osError('pipe2', koffi.errno());
      return [fds.readInt32LE(0), fds.readInt32LE(4)];
    },
    connectUnix(path) {
      const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
      if (fd < 0) throw osError('socket', koffi.errno());
      const addr = sockaddrUn(path);
      if ((connect(fd, addr, addr.length) as number) !== 0) {
        const e = koffi.errno();
        close(fd);
        throw osError(`connect ${path}`, e);
      }
      return fd;
    },
    recv(fd, max) {
      const want = Math.min(max, DATA_MAX);
      setMsg(want, CONTROL);
      const n = Number(recvmsg(fd, at(MSG), MSG_CMSG_CLOEXEC | MSG_DONTWAIT));
      if (n < 0) return -koffi.errno();
      const flags = mem.readInt32LE(MSG + 48);
      const fds: number[] = [];
      const ctlLen = Number(mem.readBigUInt64LE(MSG + 40));
      // Every SCM_RIGHTS header in the control data (a peer may send several).
      for (let off = 0; off + 16 <= ctlLen; ) {
        const len = Number(mem.readBigUInt64LE(CTL + off));
        if (len < 16) break;
        if (mem.readInt32LE(CTL + off + 8) === SOL_SOCKET && mem.readInt32LE(CTL + off + 12) === SCM_RIGHTS) {
          for (let i = 16; i + 4 <= len && off + i + 4 <= CONTROL; i += 4) fds.push(mem.readInt32LE(CTL + off + i));
        }
        off += (len + 7) & ~7;
      }
      return { bytes: Buffer.from(mem.subarray(DATA, DATA + n)), fds, truncated: (flags & (MSG_TRUNC | MSG_CTRUNC)) !== 0 };
    },
    send(fd, data, fds) {
      if (data.length > DATA_MAX || fds.length > MAX_FDS) throw new Error('message too large');
      const ctlLen = fds.length > 0 ? 16 + ((fds.length * 4 + 7) & ~7) : 0;
      setMsg(data.length, ctlLen);
      mem.set(data, DATA);
      if (fds.length > 0) {
        mem.writeBigUInt64LE(BigInt(16 + fds.length * 4), CTL);
        mem.writeInt32LE(SOL_SOCKET, CTL + 8);
        mem.writeInt32LE(SCM_RIGHTS, CTL + 12);
        fds.forEach((f, i) => mem.writeInt32LE(f, CTL + 16 + 4 * i));
      }
      const n = Number(sendmsg(fd, at(MSG), MSG_NOSIGNAL));
      if (n !== data.length) throw osError('sendmsg', n < 0 ? koffi.errno() : 0);
    },
    peerCred(fd) {
      const v = Buffer.alloc(12);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(12);
      if ((getsockopt(fd, SOL_SOCKET, SO_PEERCRED, v, len) as number) !== 0) throw osError('getsockopt(SO_PEERCRED)', koffi.errno());
      return { pid: v.readInt32LE(0), uid: v.readUInt32LE(4), gid: v.readUInt32LE(8) };
    },
    peerPidfd(fd) {
      const v = Buffer.alloc(4);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(4);
      if ((getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, v, len) as number) !== 0) return -koffi.errno();
      return v.readInt32LE(0);
    },
    shutdown(fd) {
      shutdown(fd, SHUT_RDWR);
    },
    close(fd) {
      close(fd);
    },
  });
}
