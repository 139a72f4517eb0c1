/**
 * AF_VSOCK sockets (vm_sockets.h), which Node has no API for: the guest agent listens
 * on a vsock port under Firecracker, and tests connect through the loopback transport.
 * The descriptors become Node streams through fd-stream.ts.
 */
import { ffi, osError } from './ffi.js';

const AF_VSOCK = 40;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
export const VMADDR_CID_ANY = 0xffffffff;
/** The local (loopback) context: connections to ourselves, with vsock_loopback loaded. */
export const VMADDR_CID_LOCAL = 1;
export const VMADDR_CID_HOST = 2;

/** struct sockaddr_vm. */
function sockaddrVm(cid: number, port: number): Buffer {
  const a = Buffer.alloc(16);
  a.writeUInt16LE(AF_VSOCK, 0);
  a.writeUInt32LE(port, 4);
  a.writeUInt32LE(cid, 8);
  return a;
}

export interface VsockOps {
  /** A bound (not yet listening) AF_VSOCK stream socket on `port` of every CID. Throws. */
  bind(port: number): number;
  /** A blocking connected AF_VSOCK stream socket to `cid`:`port`. Throws. */
  connect(cid: number, port: number): number;
}

let cached: VsockOps | undefined;

export function vsockOps(): VsockOps {
  if (cached) return cached;
  const { koffi, lib } = ffi();
  const socket = lib.func('int socket(int domain, int type, int proto)');
  const bind = lib.func('int bind(int fd, void *addr, unsigned int len)');
  const connect = lib.func('int connect(int fd, void *addr, unsigned int len)');
  const close = lib.func('int close(int fd)');
  const open = (what: string) => {
    const fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) throw osError(`socket(AF_VSOCK) for ${what}`, koffi.errno());
    return fd;
  };
  return (cached = {
    bind(port) {
      const fd = open(`port ${port}`);
      const a = sockaddrVm(VMADDR_CID_ANY, port);
      if ((bind(fd, a, a.length) as number) !== 0) {
        const e = koffi.errno();
        close(fd);
        throw osError(`bind(vsock port ${port})`, e);
      }
      return fd;
    },
    connect(cid, port) {
      const fd = open(`${cid}:${port}`);
      const a = sockaddrVm(cid, port);
      if ((connect(fd, a, a.length) as number) !== 0) {
        const e = koffi.errno();
        close(fd);
        throw osError(`connect(vsock ${cid}:${port})`, e);
      }
      return fd;
    },
  });
}
