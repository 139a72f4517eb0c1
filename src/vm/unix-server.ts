import { createServer, type Socket } from 'node:net';

/** A listening socket server whose close() also hangs up on its clients. */
export interface UnixServer {
  close(): Promise<void>;
}

/**
 * Listens on the Unix socket `path` (in a VM's run directory) and hands each client to
 * `onClient`. close() hangs up on every client still connected: server.close() alone
 * waits for each to hang up, and the VM is going away.
 */
export async function serveUnixSocket(path: string, onClient: (sock: Socket) => void): Promise<UnixServer> {
  const clients = new Set<Socket>();
  const server = createServer((sock) => {
    clients.add(sock);
    sock.on('close', () => clients.delete(sock));
    onClient(sock);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of clients) c.destroy();
      }),
  };
}
