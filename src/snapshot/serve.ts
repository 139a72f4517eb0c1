import { closeSync } from 'node:fs';
import { open, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { jailOps } from '../os/jail-ops.js';
import { PageServer } from './uffd/page-server.js';
import { errors } from '../errors/catalogue.js';
import { withFileLock } from '../util/file-lock.js';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import * as z from 'zod/mini';
import { Connection, HOST_LIMITS } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { socketTransport } from '../protocol/transport.js';
import type { Layout } from '../setup/layout.js';
import { reapLeftovers } from '../state/reaper.js';
import { isOwnerAlive, StateStore } from '../state/store.js';
import { assertPortsFree, portInUse, publishedByOther } from '../net/ports.js';
import { writeFileAtomic } from '../util/fs-atomic.js';
import { failpoint } from '../util/failpoint.js';
import type { Logger } from '../util/log.js';
import { deadline, isSameProcessAlive, processStartTime } from '../util/proc.js';
import { SERVE_SCHEMA, serveSocketPath, serveStatePath, type ServeState } from './serve-state.js';
import { loadSnapshot, SNAPSHOT_FILES, verifySnapshot, type SnapshotMeta } from './store.js';
import { ClonePool, HandoutError, type TakenClone } from './pool.js';
import { cloneRunOptions, nicSwapRefusal, type CloneFlags } from '../options/clone-options.js';
import { cloneNetwork, unpoolable } from '../options/pool-options.js';
import type { PoolNetwork } from '../vm/pool-network.js';

/** `--pool`: how many clones to keep ready, on which network, and the flags their processes start with. */
export interface ServePool {
  size: number;
  network: PoolNetwork | undefined;
  globalArgs: string[];
}

export const SERVE = { attach: 'serve.attach', uffd: 'serve.uffd', take: 'serve.take', release: 'serve.release' } as const;
export const AttachSchema = z.object({ name: z.string(), pid: z.int(), pidStartTime: z.int() });
/**
 * How a clone gets its memory: the snapshot's file, and for a QEMU snapshot a sealed
 * memfd with the same bytes (the server's fd number: the clone opens /proc/PID/fd/N);
 * a Firecracker snapshot's by userfaultfd (`uffd`).
 */
export const AttachResultSchema = z.object({ tag: z.string(), memory: z.object({ kind: z.literal('file'), path: z.string(), sealedFd: z.optional(z.int()) }), uffd: z.optional(z.boolean()) });
/** A clone asks for its memory by userfaultfd: listen at `socket` for its VMM, which runs as `peerUid`. */
export const UffdRequestSchema = z.object({ socket: z.string().check(z.minLength(2), z.maxLength(107), z.regex(/^\//)), peerUid: z.int().check(z.nonnegative()) });

/** Take a pooled clone for these `snapshot run` flags; `detached` leaves its lifetime to itself (-d). */
export const TakeSchema = z.object({ flags: z.object({ raw: z.record(z.string(), z.unknown()), name: z.string(), exec: z.optional(z.array(z.string())), source: z.unknown() }), detached: z.boolean() });
export const TakeResultSchema = z.union([
  z.object({ taken: z.literal(true), name: z.string(), runDir: z.string(), pid: z.int() }),
  z.object({ taken: z.literal(false), why: z.string() }),
  z.object({ taken: z.literal(false), error: z.object({ code: z.string(), message: z.string(), hint: z.optional(z.string()) }) }),
]);

/** How long clones get to stop when their server is told to end, before SIGKILL. */
const CLONE_STOP_MS = 30_000;

interface Clone {
  name: string;
  pid: number;
  pidStartTime: number;
  sock: Socket;
  /** The page server's client id, once its VMM is to be served by userfaultfd. */
  uffdId?: string;
}

/**
 * `fcvm snapshot serve TAG`: owns a snapshot while clones run from it. It checks every
 * byte once (which also pulls the memory file into the page cache the clones share),
 * keeps the memory file open, tracks its clones through their connections, and ends
 * them when it is told to end. A clone whose server dies stops by itself (its
 * connection closes). Firecracker clones take their memory from here by userfaultfd: a
 * socket per clone, served by the page server's worker threads.
 */
export async function serveSnapshot(layout: Layout, log: Logger, tag: string, interrupt: AbortSignal, out: Writable, poolOpts?: ServePool): Promise<number> {
  const say = (line: string) => out.write(`fcvm: ${line}\n`);
  await reapLeftovers(layout, log);
  const { dir, meta } = await loadSnapshot(layout, tag);
  const poolNet = poolOpts ? poolOpts.network ?? (cloneNetwork(meta, {}) as PoolNetwork) : undefined;
  // A pooled rootless clone has a user-mode NIC (pool-network.ts): a bridged source's cannot restore onto it.
  const refused = poolNet && nicSwapRefusal(meta.plan.network.mode, poolNet, 'user');
  if (refused) throw refused;
  const t0 = performance.now();
  // Until it is served (its state file, below), the snapshot is not in use: a delete
  // may take it meanwhile, which is no bug of fcvm's but a snapshot that is gone.
  const gone = (e: unknown): never => {
    throw (e as NodeJS.ErrnoException).code === 'ENOENT' ? errors.snapshotNotFound(tag) : e;
  };
  await verifySnapshot(dir, meta, { trustStamp: false }).catch(gone);
  const verifyMs = Math.round(performance.now() - t0);
  failpoint('serve:verified');
  const memoryPath = join(dir, SNAPSHOT_FILES.memory);
  const memory = await open(memoryPath, 'r').catch(gone);
  // One sealed copy of guest RAM that every jailed QEMU clone maps privately: they share
  // its pages, and none can write it (see sealedMemory in the QEMU driver).
  const sealedFd = meta.machine.hypervisor === 'qemu' ? (await jailOps()).sealedCopy(memory.fd, meta.machine.memoryMiB * 2 ** 20, `fcvm-snapshot-${tag}`) : undefined;
  const pages = meta.machine.hypervisor === 'firecracker' ? await startPageServer(dir, memoryPath, say) : undefined;
  let uffdClients = 0;
  const clones = new Set<Clone>();
  await mkdir(layout.serveState, { recursive: true });
  const socketPath = serveSocketPath(layout, process.pid);
  await rm(socketPath, { force: true });
  const sockets = new Set<Socket>();
  const pool = poolOpts ? new ClonePool({ size: poolOpts.size, network: poolNet!, servePid: process.pid, globalArgs: poolOpts.globalArgs, log, say }) : undefined;
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const conn = new Connection(socketTransport(sock), { role: 'agent', features: FEATURES, limits: HOST_LIMITS });
    let clone: Clone | undefined;
    // Pooled clones this connection took, which end with it (unless taken detached).
    const taken: TakenClone[] = [];
    sock.on('close', () => {
      for (const t of taken.splice(0)) void pool?.release(t);
      if (clone) {
        if (clone.uffdId) pages?.drop(clone.uffdId);
        clones.delete(clone);
        say(`clone "${clone.name}" (pid ${clone.pid}) detached; ${clones.size} running`);
      }
    });
    conn.onRequest(async (method, params) => {
      if (method === SERVE.take) {
        const p = TakeSchema.safeParse(params);
        if (!p.success) throw Object.assign(new Error('invalid params'), { code: 'BAD_REQUEST' });
        const flags = p.data.flags as unknown as CloneFlags;
        if (!pool) return { taken: false, why: 'the server keeps no pool' };
        if (interrupt.aborted) return { taken: false, why: 'the server is stopping' };
        const why = unpoolable(pool.network, meta, flags.raw) ?? await refusedByClone(layout, meta, flags);
        if (why) {
          say(`pool: not handed out: ${why}`);
          return { taken: false, why };
        }
        if (interrupt.aborted) return { taken: false, why: 'the server is stopping' };
        try {
          const t = await pool.take(flags);
          if (!t) return { taken: false, why: 'no pooled clone is ready' };
          if (!p.data.detached) taken.push(t);
          say(`pool: handed out "${t.name}" (pid ${t.pid}); ${pool.ready} ready`);
          return { taken: true, name: t.name, runDir: t.runDir, pid: t.pid };
        } catch (e) {
          if (!(e instanceof HandoutError)) throw e;
          return { taken: false, error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } };
        }
      }
      if (method === SERVE.release) {
        await Promise.all(taken.splice(0).map((t) => pool!.release(t)));
        return {};
      }
      if (method === SERVE.uffd) {
        const p = UffdRequestSchema.safeParse(params);
        if (!p.success) throw Object.assign(new Error('invalid params'), { code: 'BAD_REQUEST' });
        if (!pages) throw Object.assign(new Error(`snapshot "${tag}" is not a Firecracker snapshot; its clones map its memory file`), { code: 'UNSUPPORTED' });
        if (!clone || clone.uffdId) throw Object.assign(new Error('attach first, and once per clone'), { code: 'BAD_REQUEST' });
        clone.uffdId = `${clone.name}#${++uffdClients}`;
        await pages.listen(clone.uffdId, p.data.socket, { allowUids: [...new Set([process.getuid?.() ?? 0, p.data.peerUid])] }).catch((e: Error) => {
          throw Object.assign(new Error(`cannot listen at ${p.data.socket}: ${e.message}`), { code: 'BAD_REQUEST' });
        });
        return {};
      }
      if (method !== SERVE.attach) throw Object.assign(new Error(`unknown method "${method}"`), { code: 'UNSUPPORTED' });
      const p = AttachSchema.safeParse(params);
      if (!p.success) throw Object.assign(new Error('invalid params'), { code: 'BAD_REQUEST' });
      if (interrupt.aborted) throw Object.assign(new Error('the server is stopping'), { code: 'BUSY' });
      failpoint('serve:attach');
      clone = { ...p.data, sock };
      clones.add(clone);
      say(`clone "${clone.name}" (pid ${clone.pid}) attached; ${clones.size} running`);
      return { tag, memory: { kind: 'file', path: memoryPath, ...(sealedFd !== undefined ? { sealedFd } : {}) }, uffd: pages !== undefined };
    });
    conn.handshake().catch(() => {});
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  failpoint('serve:listening');
  const state: ServeState = {
    schema: SERVE_SCHEMA,
    pid: process.pid,
    pidStartTime: processStartTime(process.pid)!,
    tag,
    socket: socketPath,
    memory: { kind: 'file', path: memoryPath },
    uffd: pages !== undefined,
    startedAt: new Date().toISOString(),
  };
  try {
    // Under the lock `snapshots delete` takes: a snapshot is deleted or served, not both.
    await withFileLock(join(layout.locks, 'alloc.lock'), async () => {
      if (!(await stat(dir).then(() => true, () => false))) throw errors.snapshotNotFound(tag);
      await writeFileAtomic(serveStatePath(layout, process.pid), JSON.stringify(state, null, 2) + '\n');
    });
    failpoint('serve:announced');
    const mib = Math.round((meta.files[SNAPSHOT_FILES.memory]?.size ?? 0) / 2 ** 20);
    say(`serving snapshot "${tag}" (${mib} MiB of memory, checked in ${verifyMs} ms) as pid ${process.pid}; start clones with: fcvm snapshot run --pid ${process.pid}`);
    if (pool) say(`pool: keeping ${poolOpts!.size} clone(s) warm on --network ${pool.network}`);
    pool?.fill();
    await new Promise<void>((resolve) => (interrupt.aborted ? resolve() : interrupt.addEventListener('abort', () => resolve(), { once: true })));
    say(`${String(interrupt.reason)}: stopping ${clones.size} clone(s)`);
    await Promise.all([pool?.stop(), stopClones(clones)]);
    return 0;
  } finally {
    await pool?.stop();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    await rm(serveStatePath(layout, process.pid), { force: true });
    await rm(socketPath, { force: true });
    await pages?.stop();
    await memory.close();
    if (sealedFd !== undefined) closeSync(sealedFd);
  }
}

/**
 * The userfaultfd page server of a Firecracker snapshot, with the working set recorded
 * by an earlier server (a file in the snapshot, not part of its checksums: it only
 * orders the prefetch; every page still comes from the checked memory file).
 */
async function startPageServer(dir: string, memoryPath: string, say: (line: string) => void): Promise<PageServer> {
  const wsPath = join(dir, SNAPSHOT_FILES.workingSet);
  const ws = await readFile(wsPath).then((b) => new Uint32Array(b.buffer, b.byteOffset, Math.floor(b.length / 4)), () => undefined);
  const pages = await PageServer.start({ memoryPath, ...(ws ? { workingSet: ws } : {}) });
  pages.on('attached', (m) => say(`page server: clone ${m.id.split('#')[0]}'s VMM (pid ${m.pid}) connected: ${m.regions} regions, ${Math.round(m.bytes / 2 ** 20)} MiB`));
  pages.on('refused', (m) => say(`page server: refused clone ${m.id.split('#')[0]}'s VMM${m.pid ? ` (pid ${m.pid})` : ''}: ${m.why}${m.killed ? '; it was killed' : ''}`));
  pages.on('gone', (m) => m.why !== 'dropped' && !m.why.startsWith('the server is stopping')
    ? say(`page server: clone ${m.id.split('#')[0]}: ${m.why} after ${m.stats.faults} faults (${m.stats.around} more pages around them, ${m.stats.prefetched} prefetched)`)
    : undefined);
  pages.on('recorded', (m) => {
    if (ws) return;
    const bytes = Buffer.from(m.pages.buffer, m.pages.byteOffset, m.pages.byteLength);
    void writeFileAtomic(wsPath, bytes).then(() => say(`page server: recorded a working set of ${m.pages.length} pages for later clones`), () => {});
  });
  return pages;
}

/** SIGTERM to every clone's supervisor, then SIGKILL to those still there after the grace. */
async function stopClones(clones: Set<Clone>): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    for (const c of clones) {
      if (!isSameProcessAlive(c.pid, c.pidStartTime)) continue;
      try {
        process.kill(c.pid, sig);
      } catch {
        // already gone
      }
    }
  };
  signal('SIGTERM');
  const until = Date.now() + CLONE_STOP_MS;
  while (clones.size > 0 && Date.now() < until) await deadline(100);
  if (clones.size > 0) signal('SIGKILL');
}

/**
 * Why a clone's start would refuse these flags, or undefined: a --map of a path its
 * source had no volume at, a name a running VM has, a host port taken. The requester
 * then starts a clone of its own, which says so in one line, and no pooled clone is
 * spent on it. (A race past these checks still fails at the member's own claim.)
 */
async function refusedByClone(layout: Layout, meta: SnapshotMeta, flags: CloneFlags): Promise<string | undefined> {
  try {
    const opts = cloneRunOptions(meta, flags);
    const live = (await new StateStore(layout.vmState).list()).flatMap((e) => (e.ok && isOwnerAlive(e.state) ? [e.state] : []));
    if (live.some((v) => v.name === opts.name)) return `a VM named "${opts.name}" is already running`;
    // Published by another VM (a DNAT rule, no listener) or taken by a host process.
    const clash = publishedByOther(live, opts.name, opts.publish);
    if (clash) return portInUse(clash.mapping, `published by VM "${clash.by}"`).message;
    await assertPortsFree(opts.publish);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
