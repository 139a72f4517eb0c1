/**
 * A volume server on a Unix socket, for tests that run it as another user (rootless):
 *   node serve-socket.js SOCKET HOSTDIR [ro]
 * Serves one connection, then exits.
 */
import { createServer } from 'node:net';
import { fsCalls } from '../../os/fs-calls.js';
import { socketTransport } from '../../protocol/transport.js';
import { ownersForProcess } from '../owners.js';
import { VolumeServer } from '../volume-server.js';

/** Serves `hostPath` to the first connection on `socket`; resolves when that connection closes. */
async function serveOne(socket: string, hostPath: string, readOnly: boolean): Promise<void> {
  const server = new VolumeServer([{ index: 0, hostPath, readOnly }], await fsCalls(), ownersForProcess(), { warn: (m) => process.stderr.write(`${m}\n`) });
  return new Promise((resolve) => {
    const listener = createServer((sock) => {
      listener.close();
      const t = socketTransport(sock);
      t.onClose(() => {
        server.close();
        resolve();
      });
      server.attach(t);
    });
    listener.listen(socket, () => process.stdout.write('ready\n'));
  });
}

/** The process entry: `node serve-socket.js SOCKET HOSTDIR [ro]`; returns the exit code. */
async function main(argv: string[]): Promise<number> {
  const [socket, hostPath, ro] = argv;
  await serveOne(socket!, hostPath!, ro === 'ro');
  return 0;
}

// process.exit, not exitCode: the process ends once the connection closes, whatever it still holds.
process.exit(await main(process.argv.slice(2)));
