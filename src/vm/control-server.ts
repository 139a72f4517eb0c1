import type { Socket } from 'node:net';
import { join } from 'node:path';
import { EXEC } from '../protocol/api.js';
import type { Connection } from '../protocol/connection.js';
import type { Logger } from '../util/log.js';
import { serveUnixSocket, type UnixServer } from './unix-server.js';

/** The supervisor's control socket, in the VM's run directory. */
export const controlSocketPath = (runDir: string) => join(runDir, 'control.sock');

/**
 * Serves `fcvm exec` and friends. Each client gets a nested agent session inside one
 * channel of the supervisor's agent connection; the supervisor only splices bytes, so
 * it needs no knowledge of what the client asks the agent.
 */
export function startControlServer(runDir: string, agent: Connection, log: Logger): Promise<UnixServer> {
  return serveUnixSocket(controlSocketPath(runDir), (sock) => void splice(sock, agent, log));
}

/** How long the agent may take to open a session for a client that stays connected. */
const SESSION_OPEN_TIMEOUT_MS = 120_000;

/** Past this many bytes buffered towards a slow side, the faster side is paused. */
export const SPLICE_HIGH_WATER = 1 << 20;

async function splice(sock: Socket, agent: Connection, log: Logger): Promise<void> {
  sock.on('error', () => {});
  const ch = agent.openChannel();
  let done = false;
  let releaseAgent: (() => void) | undefined;
  const finish = () => {
    if (done) return;
    done = true;
    releaseAgent?.();
    // The agent's end of the session must hear that nobody listens any more: it then
    // ends the session and what it started, instead of running a gone client's exec.
    if (!ch.ended) ch.end(); // (the agent ended it already otherwise)
    agent.releaseChannel(ch.id);
    sock.destroy();
  };
  // Guest to client: a client that reads slower than the guest writes holds its channel
  // (the VM's other sessions go on), so the supervisor never buffers more than
  // SPLICE_HIGH_WATER and one window for it.
  ch.on('data', (d) => {
    if (done) return;
    sock.write(d);
    if (sock.writableLength > SPLICE_HIGH_WATER && !releaseAgent) {
      releaseAgent = ch.hold();
      sock.once('drain', () => {
        releaseAgent?.();
        releaseAgent = undefined;
      });
    }
  });
  ch.on('end', finish);
  // Client to guest: the client waits while the guest has not taken what it was sent.
  // Bytes that arrive before the agent has opened its side are queued by the channel.
  sock.on('data', (d) => {
    ch.write(d);
    if (ch.backlog > SPLICE_HIGH_WATER && !sock.isPaused()) {
      sock.pause();
      ch.onceDrained(() => sock.resume());
    }
  });
  sock.on('close', finish);
  try {
    // The client bounds its own wait (and hangs up); this bound is for a client that never does.
    await agent.request(EXEC.openSession, { channel: ch.id }, SESSION_OPEN_TIMEOUT_MS);
  } catch (e) {
    log.debug({ err: e }, 'could not open an agent session for a control client');
    finish();
  }
}
