import { join } from 'node:path';
import * as z from 'zod/mini';
import { isFcvmError } from '../errors/fcvm-error.js';
import { Connection, HOST_LIMITS } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { ContainerKillSchema } from '../protocol/api.js';
import { parseParams } from '../protocol/params.js';
import { socketTransport } from '../protocol/transport.js';
import type { Logger } from '../util/log.js';
import { serveUnixSocket, type UnixServer } from './unix-server.js';

/** The supervisor's management socket: requests for the supervisor itself, not the guest. */
export const manageSocketPath = (runDir: string) => join(runDir, 'manage.sock');

export const MANAGE = { snapshot: 'snapshot.create', stop: 'vm.stop', wait: 'container.wait', kill: 'container.kill' } as const;
export const SnapshotRequestSchema = z.object({ tag: z.string(), trim: z.optional(z.boolean()) });
/** `fcvm stop`: as SIGTERM to the supervisor, with the container's grace period if given. */
export const StopRequestSchema = z.object({ graceSeconds: z.optional(z.number().check(z.nonnegative(), z.lte(3600))) });

export interface ManageHandlers {
  snapshot(tag: string, opts: { trim?: boolean; signal: AbortSignal }): Promise<object>;
  stop(graceSeconds: number | undefined): Promise<object>;
  /** `fcvm wait`: answers { exitCode } once the container ended. */
  wait(): Promise<{ exitCode: number }>;
  kill(signal: string): Promise<object>;
}

/**
 * Serves management requests (`fcvm snapshot create`) with the host-guest protocol,
 * the supervisor answering. An fcvm error is passed on by its code and one-line text.
 */
export function startManageServer(runDir: string, handlers: ManageHandlers, log: Logger): Promise<UnixServer> {
  return serveUnixSocket(manageSocketPath(runDir), (sock) => {
    const conn = new Connection(socketTransport(sock), { role: 'agent', features: FEATURES, limits: HOST_LIMITS });
    const gone = new AbortController();
    void conn.closed.then(() => gone.abort(new Error('the command that asked for it ended')));
    conn.onRequest(async (method, params) => {
      try {
        if (method === MANAGE.stop) return await handlers.stop(parseParams(StopRequestSchema, params).graceSeconds);
        if (method === MANAGE.wait) return await handlers.wait();
        if (method === MANAGE.kill) return await handlers.kill(parseParams(ContainerKillSchema, params).signal);
        if (method !== MANAGE.snapshot) throw Object.assign(new Error(`unknown method "${method}"`), { code: 'UNSUPPORTED' });
        const p = parseParams(SnapshotRequestSchema, params);
        // A requester that goes away (Ctrl-C) cancels a snapshot that is not finished yet.
        return await handlers.snapshot(p.tag, { ...(p.trim === undefined ? {} : { trim: p.trim }), signal: gone.signal });
      } catch (e) {
        log.debug({ err: e }, `management request ${method} failed`);
        if (isFcvmError(e)) throw Object.assign(new Error(e.oneLine()), { code: e.code });
        throw e;
      }
    });
    conn.handshake().catch(() => {});
  });
}
