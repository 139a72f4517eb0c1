import { existsSync } from 'node:fs';
import { connectUnix } from '../util/unix-socket.js';
import * as z from 'zod/mini';
import { errors } from '../errors/catalogue.js';
import { findRunningVm } from '../exec/find-vm.js';
import { Connection, RemoteError } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { socketTransport } from '../protocol/transport.js';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import { MANAGE, manageSocketPath } from '../vm/manage-server.js';
import { loadSnapshot } from './store.js';

const ResultSchema = z.object({ tag: z.string(), pausedMs: z.number(), memoryBytes: z.number() });

/** Asks a VM's supervisor (which owns its VMM) to snapshot it, and waits until the snapshot is complete. */
export async function requestSnapshot(layout: Layout, log: Logger, by: { name: string } | { pid: number }, tag: string, opts: { trim?: boolean } = {}): Promise<z.infer<typeof ResultSchema> & { vm: string }> {
  // Refuse a taken tag before the VM pauses for nothing.
  const exists = await loadSnapshot(layout, tag).then(() => true, (e) => (e as { code?: string }).code !== 'SNAPSHOT_NOT_FOUND');
  if (exists) throw errors.snapshotExists(tag);
  const { state } = await findRunningVm(layout, log, by);
  const path = manageSocketPath(state.runDir);
  if (!existsSync(path)) throw errors.vmNotReady(state.name, state.status);
  const sock = await connectUnix(path).catch((e: Error) => {
    throw errors.snapshotRefused(state.name, `its supervisor does not answer (${e.message})`);
  });
  const conn = new Connection(socketTransport(sock), { role: 'host', features: FEATURES });
  try {
    await conn.handshake(10_000);
    const r = ResultSchema.parse(await conn.request(MANAGE.snapshot, { tag, ...opts }, 600_000));
    return { ...r, vm: state.name };
  } catch (e) {
    if (e instanceof RemoteError) throw errors.relayed(e.code, e.message);
    if ((e as Error).name === 'ConnectionClosedError') throw errors.snapshotRefused(state.name, 'its supervisor went away during the snapshot');
    throw e;
  } finally {
    conn.close();
  }
}
