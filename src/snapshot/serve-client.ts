import { closeSync, openSync, readFileSync } from 'node:fs';
import { jailOps } from '../os/jail-ops.js';
import { connectUnix } from '../util/unix-socket.js';
import { errors } from '../errors/catalogue.js';
import { Connection, RemoteError } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { socketTransport } from '../protocol/transport.js';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import { processStartTime, sleep } from '../util/proc.js';
import { loadServe, type ServeState } from './serve-state.js';
import { AttachResultSchema, SERVE } from './serve.js';

/** How long to wait for a server that was just started (it checks its snapshot first). */
const STARTING_SERVER_WAIT_MS = 60_000;

export interface ServerLink {
  tag: string;
  /** This process's fd of the server's sealed copy of guest RAM, if it has one (the caller closes it). */
  sealedFd: number | undefined;
  /** The server serves memory by userfaultfd (a Firecracker snapshot). */
  uffd: boolean;
  /** Asks the server to listen for this clone's VMM at `socketPath`; resolves once it does. */
  serveUffd(socketPath: string, peerUid: number): Promise<void>;
  /** Resolves when the server's end goes away: the clone must stop. */
  closed: Promise<unknown>;
  close(): void;
}

/** Registers the clone `name` with the memory server `pid`, which then owns its lifetime. */
export async function attachToServer(layout: Layout, pid: number, name: string, log: Logger): Promise<ServerLink> {
  const serve = await findServer(layout, pid);
  const sock = await connectUnix(serve.socket).catch(() => {
    throw errors.serveNotFound(pid);
  });
  const conn = new Connection(socketTransport(sock), { role: 'host', features: FEATURES });
  try {
    await conn.handshake(10_000);
    const result = AttachResultSchema.parse(await conn.request(SERVE.attach, { name, pid: process.pid, pidStartTime: processStartTime(process.pid)! }, 10_000));
    log.debug({ server: pid, tag: result.tag }, 'attached to the memory server');
    const sealedFd = result.memory.sealedFd !== undefined ? await openSealed(pid, result.memory.sealedFd, log) : undefined;
    return {
      tag: result.tag,
      sealedFd,
      uffd: result.uffd ?? false,
      serveUffd: async (socket, peerUid) => {
        try {
          await conn.request(SERVE.uffd, { socket, peerUid }, 10_000);
        } catch (e) {
          if (e instanceof RemoteError) throw errors.vmmFailed(`the memory server (pid ${pid}) cannot serve this clone's memory: ${e.message}`, e);
          throw e;
        }
      },
      closed: conn.closed,
      close: () => conn.close(),
    };
  } catch (e) {
    conn.close();
    // Refused, or gone while the clone attached (killed, say): either way no server is there.
    if (e instanceof RemoteError || ['ConnectionClosedError', 'TimeoutError'].includes((e as Error).name)) throw errors.serveNotFound(pid);
    throw e;
  }
}

/** The server's state; a server that is still starting (checking its snapshot) is waited for. */
async function findServer(layout: Layout, pid: number): Promise<ServeState> {
  const until = Date.now() + STARTING_SERVER_WAIT_MS;
  for (;;) {
    const s = await loadServe(layout, pid);
    if (s) return s;
    if (!isStartingServer(pid) || Date.now() > until) throw errors.serveNotFound(pid);
    await sleep(100);
  }
}

function isStartingServer(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('snapshot') && argv.includes('serve');
  } catch {
    return false;
  }
}

/** The server's sealed memfd, through /proc; undefined (the clone makes its own) if it is not there or not sealed. */
async function openSealed(pid: number, fd: number, log: Logger): Promise<number | undefined> {
  let mine: number;
  try {
    mine = openSync(`/proc/${pid}/fd/${fd}`, 'r');
  } catch (e) {
    log.debug({ err: e }, 'cannot open the server\'s sealed memory');
    return undefined;
  }
  if ((await jailOps()).isWriteSealed(mine)) return mine;
  closeSync(mine);
  return undefined;
}
