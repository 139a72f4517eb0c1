/**
 * Node streams over socket descriptors of families Node's net module does not open
 * (AF_VSOCK): libuv's stream handle (pipe_wrap, the handle behind net.Socket for Unix
 * sockets) works on any stream socket descriptor, and gives the event loop's own I/O,
 * with no thread per connection. process.binding('pipe_wrap') is the one way to reach it.
 */
import { Socket } from 'node:net';

interface PipeHandle {
  open(fd: number): number;
  listen(backlog: number): number;
  close(cb?: () => void): void;
  onconnection: ((status: number, client: PipeHandle | undefined) => void) | null;
}

interface PipeWrap {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number; SERVER: number };
}

const pipeWrap = (): PipeWrap => (process as unknown as { binding(name: string): PipeWrap }).binding('pipe_wrap');

/** A net.Socket over a connected stream socket descriptor; the socket owns it from now on. */
export function socketFromFd(fd: number): Socket {
  const { Pipe, constants } = pipeWrap();
  const handle = new Pipe(constants.SOCKET);
  const err = handle.open(fd);
  if (err !== 0) throw Object.assign(new Error(`cannot open descriptor ${fd} as a stream (uv error ${err})`), { code: 'EBADF' });
  return new Socket({ handle, readable: true, writable: true } as never);
}

/** Listens on a bound stream socket descriptor; each connection arrives as a net.Socket. */
export function listenOnFd(fd: number, backlog: number, onConnection: (s: Socket) => void): { close(): void } {
  const { Pipe, constants } = pipeWrap();
  const handle = new Pipe(constants.SERVER);
  let err = handle.open(fd);
  if (err === 0) err = handle.listen(backlog);
  if (err !== 0) throw Object.assign(new Error(`cannot listen on descriptor ${fd} (uv error ${err})`), { code: 'EBADF' });
  handle.onconnection = (status, client) => {
    if (status === 0 && client) onConnection(new Socket({ handle: client, readable: true, writable: true } as never));
  };
  return { close: () => handle.close() };
}
