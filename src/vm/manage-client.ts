import { Connection } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { socketTransport } from '../protocol/transport.js';
import { connectUnix } from '../util/unix-socket.js';
import { manageSocketPath } from './manage-server.js';

/** One request to a supervisor's management socket; rejects if it cannot be reached or refuses. */
export async function manageRequest(runDir: string, method: string, params: object, timeoutMs: number): Promise<unknown> {
  const sock = await connectUnix(manageSocketPath(runDir));
  const conn = new Connection(socketTransport(sock), { role: 'host', features: FEATURES });
  try {
    await conn.handshake(timeoutMs);
    return await conn.request(method, params, timeoutMs);
  } finally {
    conn.close();
  }
}
