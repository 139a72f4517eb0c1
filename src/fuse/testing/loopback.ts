/**
 * The whole volume stack on this host, without a VM: the guest's relay (FUSE mount on a
 * temporary directory) and the host's server in one process, joined by an in-memory
 * transport pair. Needs root and /dev/fuse. File operations against the mount must run
 * in another process (or thread): this process serves them.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FuseRelay } from '../../agent/fuse-relay.js';
import { fsCalls, mountCalls } from '../../os/fs-calls.js';
import { memoryTransportPair, type Transport } from '../../protocol/transport.js';
import { ownersForProcess, type Owners } from '../owners.js';
import { VolumeServer, type ServedVolume } from '../volume-server.js';
import type { VolumeTable } from '../table-snapshot.js';

export interface Loopback {
  /** Mount point of each volume, by index. */
  mountPoints: string[];
  relay: FuseRelay;
  server: VolumeServer;
  /** Ends the host side only, as a dead supervisor would. */
  killHost(): void;
  /** A fresh server (a clone's), restored from `tables`, on a new session. */
  replaceHost(volumes: readonly ServedVolume[], tables: readonly VolumeTable[]): Promise<void>;
  close(): Promise<void>;
}

export async function startLoopback(volumes: { hostPath: string; readOnly: boolean }[], owners: Owners = ownersForProcess()): Promise<Loopback> {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-vol-'));
  chmodSync(dir, 0o755);
  const served = volumes.map((v, index) => ({ ...v, index }));
  const os = await fsCalls();
  const log = { warn: (m: string) => process.stderr.write(`server: ${m}\n`) };
  let server = new VolumeServer(served, os, owners, log);
  const relay = new FuseRelay(await mountCalls(), (m) => process.stderr.write(`relay: ${m}\n`));
  const mountPoints = served.map((v) => join(dir, String(v.index)));
  for (const v of served) relay.mount({ index: v.index, mountPoint: mountPoints[v.index]!, readOnly: v.readOnly });
  let hostEnd: Transport;
  const connect = (invalidate: boolean) => {
    const [guest, host] = memoryTransportPair();
    relay.attach(guest);
    server.attach(host, { invalidate });
    hostEnd = host;
  };
  connect(false);
  const lb: Loopback = {
    mountPoints,
    relay,
    get server() {
      return server;
    },
    killHost: () => {
      hostEnd.close();
      server.close();
    },
    async replaceHost(vols, tables) {
      // As after a restore: the relay keeps its requests, the old host never answers them.
      relay.arm();
      const old = server;
      server = new VolumeServer(vols, os, owners, log, tables);
      hostEnd.close();
      old.close();
      await new Promise((r) => setImmediate(r));
      connect(true);
    },
    async close() {
      await relay.close();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return lb;
}
