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
import { TransportFrameLink } from '../../agent/fuse-link.js';
import { fsCalls, mountCalls } from '../../os/fs-calls.js';
import { memoryTransportPair, socketTransport, type Transport } from '../../protocol/transport.js';
import { VportFrameLink } from '../../agent/vport-link.js';
import { connect, createServer, type Socket } from 'node:net';
import { ownersForProcess, type Owners } from '../owners.js';
import { VolumeServer, type ServedVolume } from '../volume-server.js';
import type { VolumeTable } from '../table-snapshot.js';
import type { FdLimits } from '../passthrough.js';

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

/**
 * `vport`: the guest's worker-thread link (vport-link.ts) on one end of a Unix socket
 * pair standing in for the virtio-serial port, the server on the other end.
 */
export async function startLoopback(volumes: { hostPath: string; readOnly: boolean }[], owners: Owners = ownersForProcess(), how: 'memory' | 'vport' = 'memory', limits?: FdLimits): Promise<Loopback> {
  if (how === 'vport') return startVportLoopback(volumes, owners);
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-vol-'));
  chmodSync(dir, 0o755);
  const served = volumes.map((v, index) => ({ ...v, index }));
  const os = await fsCalls();
  const log = { warn: (m: string) => process.stderr.write(`server: ${m}\n`) };
  let server = new VolumeServer(served, os, owners, log, undefined, limits);
  const link = new TransportFrameLink();
  const relay = new FuseRelay(link, await mountCalls(), (m) => process.stderr.write(`relay: ${m}\n`));
  const mountPoints = served.map((v) => join(dir, String(v.index)));
  for (const v of served) relay.mount({ index: v.index, mountPoint: mountPoints[v.index]!, readOnly: v.readOnly });
  let hostEnd: Transport;
  const connect = (invalidate: boolean) => {
    const [guest, host] = memoryTransportPair();
    link.attach(guest);
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

async function startVportLoopback(volumes: { hostPath: string; readOnly: boolean }[], owners: Owners): Promise<Loopback> {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-vol-'));
  chmodSync(dir, 0o755);
  const served = volumes.map((v, index) => ({ ...v, index }));
  const server = new VolumeServer(served, await fsCalls(), owners, { warn: (m: string) => process.stderr.write(`server: ${m}\n`) });
  const path = join(dir, 'port.sock');
  const accepted = new Promise<Socket>((res) => {
    const srv = createServer((s) => (srv.close(), res(s)));
    srv.listen(path);
  });
  const hostSock = connect(path);
  const guestSock = await accepted;
  // The guest's workers own this descriptor from now on; Node must not read it.
  const handle = (guestSock as unknown as { _handle: { fd: number; readStop(): number } })._handle;
  handle.readStop();
  const fd = handle.fd;
  // Blocking, like the port: a read waits for data instead of failing with EAGAIN.
  (await mountCalls()).setBlocking(fd);
  const link = new VportFrameLink(fd, (m) => process.stderr.write(`link: ${m}\n`));
  const relay = new FuseRelay(link, await mountCalls(), (m) => process.stderr.write(`relay: ${m}\n`));
  const mountPoints = served.map((v) => join(dir, String(v.index)));
  for (const v of served) relay.mount({ index: v.index, mountPoint: mountPoints[v.index]!, readOnly: v.readOnly });
  server.attach(socketTransport(hostSock));
  return {
    mountPoints,
    relay,
    server,
    killHost: () => {
      hostSock.destroy();
      server.close();
    },
    replaceHost: () => Promise.reject(new Error('not with a vport loopback')),
    async close() {
      hostSock.destroy();
      await relay.close();
      await link.close();
      server.close();
      guestSock.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
