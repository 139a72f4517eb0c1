import { ERROR_CODES, FcvmError, type ErrorCode } from '../errors/fcvm-error.js';
import type { CloneFlags } from '../options/clone-options.js';
import { Connection } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { socketTransport } from '../protocol/transport.js';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import { connectUnix } from '../util/unix-socket.js';
import { SERVE, TakeResultSchema } from './serve.js';
import { loadServe } from './serve-state.js';

/** A clone taken from a server's pool. */
export interface PooledClone {
  name: string;
  runDir: string;
  /** Its supervisor's PID. */
  pid: number;
  /** Ends the clone at once and resolves once it is gone (a clone taken detached is left running). */
  release(): Promise<void>;
}

/**
 * Takes a ready clone from the pool of server `pid`, handed out with these flags.
 * Undefined when the server keeps no pool, none is ready, or the pool cannot serve the
 * flags (another network, say): the caller then starts a clone of its own. A clone
 * taken without `detached` ends when this process's connection does.
 */
export async function takePooled(layout: Layout, log: Logger, pid: number, flags: CloneFlags, detached: boolean): Promise<PooledClone | undefined> {
  const serve = await loadServe(layout, pid);
  if (!serve) return undefined;
  const sock = await connectUnix(serve.socket).catch(() => undefined);
  if (!sock) return undefined;
  const conn = new Connection(socketTransport(sock), { role: 'host', features: FEATURES });
  let result;
  try {
    await conn.handshake(10_000);
    // The hand-out runs the clone's claim, network and vm.restored: seconds on a loaded host.
    result = TakeResultSchema.parse(await conn.request(SERVE.take, { flags, detached }, 120_000));
  } catch (e) {
    conn.close();
    log.debug({ err: e }, 'no pooled clone');
    return undefined;
  }
  if (!result.taken) {
    conn.close();
    if ('why' in result) {
      log.debug({ why: result.why }, 'no pooled clone');
      return undefined;
    }
    const code = (ERROR_CODES as readonly string[]).includes(result.error.code) ? (result.error.code as ErrorCode) : 'INTERNAL';
    throw new FcvmError(code, result.error.message, result.error.hint ? { hint: result.error.hint } : {});
  }
  log.debug({ name: result.name, pid: result.pid }, 'took a pooled clone');
  if (detached) conn.close();
  return {
    name: result.name,
    runDir: result.runDir,
    pid: result.pid,
    release: async () => {
      if (detached) return;
      try {
        await conn.request(SERVE.release, {}, 60_000);
      } catch (e) {
        // The server gone ends its clones too.
        log.debug({ err: e }, 'release failed');
      } finally {
        conn.close();
      }
    },
  };
}

