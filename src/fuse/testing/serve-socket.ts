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

const [socket, hostPath, ro] = process.argv.slice(2);
const server = new VolumeServer([{ index: 0, hostPath: hostPath!, readOnly: ro === 'ro' }], await fsCalls(), ownersForProcess(), { warn: (m) => process.stderr.write(`${m}\n`) });
const listener = createServer((sock) => {
  listener.close();
  const t = socketTransport(sock);
  t.onClose(() => {
    server.close();
    process.exit(0);
  });
  server.attach(t);
});
listener.listen(socket, () => process.stdout.write('ready\n'));
