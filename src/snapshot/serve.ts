import { closeSync } from 'node:fs';
import { open, mkdir, rm, stat } from 'node:fs/promises';
import { jailOps } from '../os/jail-ops.js';
import { errors } from '../errors/catalogue.js';
import { withFileLock } from '../util/file-lock.js';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import * as z from 'zod/mini';
import { Connection } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { socketTransport } from '../protocol/transport.js';
import type { Layout } from '../setup/layout.js';
import { reapLeftovers } from '../state/reaper.js';
import { writeFileAtomic } from '../util/fs-atomic.js';
import type { Logger } from '../util/log.js';
import { deadline, isSameProcessAlive, processStartTime } from '../util/proc.js';
import { SERVE_SCHEMA, serveSocketPath, serveStatePath, type ServeState } from './serve-state.js';
import { loadSnapshot, SNAPSHOT_FILES, verifySnapshot } from './store.js';

export const SERVE = { attach: 'serve.attach' } as const;
export const AttachSchema = z.object({ name: z.string(), pid: z.int(), pidStartTime: z.int() });
/**
 * How a clone gets its memory: the snapshot's file, and for a QEMU snapshot a sealed
 * memfd with the same bytes (the server's fd number: the clone opens /proc/PID/fd/N).
 */
export const AttachResultSchema = z.object({ tag: z.string(), memory: z.object({ kind: z.literal('file'), path: z.string(), sealedFd: z.optional(z.int()) }) });

/** How long clones get to stop when their server is told to end, before SIGKILL. */
const CLONE_STOP_MS = 30_000;

interface Clone {
  name: string;
  pid: number;
  pidStartTime: number;
  sock: Socket;
}

/**
 * `fcvm snapshot serve TAG`: owns a snapshot while clones run from it. It checks every
 * byte once (which also pulls the memory file into the page cache the clones share),
 * keeps the memory file open, tracks its clones through their connections, and ends
 * them when it is told to end. A clone whose server dies stops by itself (its
 * connection closes). Firecracker clones will take their memory from here by userfaultfd.
 */
export async function serveSnapshot(layout: Layout, log: Logger, tag: string, interrupt: AbortSignal, out: Writable): Promise<number> {
  const say = (line: string) => out.write(`fcvm: ${line}\n`);
  await reapLeftovers(layout, log);
  const { dir, meta } = await loadSnapshot(layout, tag);
  const t0 = performance.now();
  await verifySnapshot(dir, meta, { trustStamp: false });
  const verifyMs = Math.round(performance.now() - t0);
  const memoryPath = join(dir, SNAPSHOT_FILES.memory);
  const memory = await open(memoryPath, 'r');
  // One sealed copy of guest RAM that every jailed QEMU clone maps privately: they share
  // its pages, and none can write it (see sealedMemory in the QEMU driver).
  const sealedFd = meta.machine.hypervisor === 'qemu' ? (await jailOps()).sealedCopy(memory.fd, meta.machine.memoryMiB * 2 ** 20, `fcvm-snapshot-${tag}`) : undefined;
  const clones = new Set<Clone>();
  await mkdir(layout.serveState, { recursive: true });
  const socketPath = serveSocketPath(layout, process.pid);
  await rm(socketPath, { force: true });
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const conn = new Connection(socketTransport(sock), { role: 'agent', features: FEATURES });
    let clone: Clone | undefined;
    sock.on('close', () => {
      if (clone) {
        clones.delete(clone);
        say(`clone "${clone.name}" (pid ${clone.pid}) detached; ${clones.size} running`);
      }
    });
    conn.onRequest((method, params) => {
      if (method !== SERVE.attach) throw Object.assign(new Error(`unknown method "${method}"`), { code: 'UNSUPPORTED' });
      const p = AttachSchema.safeParse(params);
      if (!p.success) throw Object.assign(new Error('invalid params'), { code: 'BAD_REQUEST' });
      if (interrupt.aborted) throw Object.assign(new Error('the server is stopping'), { code: 'BUSY' });
      clone = { ...p.data, sock };
      clones.add(clone);
      say(`clone "${clone.name}" (pid ${clone.pid}) attached; ${clones.size} running`);
      return { tag, memory: { kind: 'file', path: memoryPath, ...(sealedFd !== undefined ? { sealedFd } : {}) } };
    });
    conn.handshake().catch(() => {});
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  const state: ServeState = {
    schema: SERVE_SCHEMA,
    pid: process.pid,
    pidStartTime: processStartTime(process.pid)!,
    tag,
    socket: socketPath,
    memory: { kind: 'file', path: memoryPath },
    startedAt: new Date().toISOString(),
  };
  try {
    // Under the lock `snapshots delete` takes: a snapshot is deleted or served, not both.
    await withFileLock(join(layout.locks, 'alloc.lock'), async () => {
      if (!(await stat(dir).then(() => true, () => false))) throw errors.snapshotNotFound(tag);
      await writeFileAtomic(serveStatePath(layout, process.pid), JSON.stringify(state, null, 2) + '\n');
    });
    const mib = Math.round((meta.files[SNAPSHOT_FILES.memory]?.size ?? 0) / 2 ** 20);
    say(`serving snapshot "${tag}" (${mib} MiB of memory, checked in ${verifyMs} ms) as pid ${process.pid}; start clones with: fcvm snapshot run --pid ${process.pid}`);
    await new Promise<void>((resolve) => (interrupt.aborted ? resolve() : interrupt.addEventListener('abort', () => resolve(), { once: true })));
    say(`${String(interrupt.reason)}: stopping ${clones.size} clone(s)`);
    await stopClones(clones);
    return 0;
  } finally {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    await rm(serveStatePath(layout, process.pid), { force: true });
    await rm(socketPath, { force: true });
    await memory.close();
    if (sealedFd !== undefined) closeSync(sealedFd);
  }
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
