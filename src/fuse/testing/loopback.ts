/**
 * The whole volume stack on this host, without a VM: the guest's relay (the real native
 * one, mounting on a temporary directory) and the host's server in this process, joined
 * by the relay's stream socket. Needs root, /dev/fuse and a C compiler. File operations
 * against the mount may run anywhere (the relay is its own process).
 *
 * The server's transport is the relay's socket itself, one session after another, as
 * the port is under QEMU (the server going away is seen as the end of the stream).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { FuseRelay } from '../../agent/fuse-relay.js';
import { fsCalls } from '../../os/fs-calls.js';
import { resyncingTransport } from '../../protocol/session-sync.js';
import type { Transport } from '../../protocol/transport.js';
import { ownersForProcess, type Owners } from '../owners.js';
import { VolumeServer, type ServedVolume } from '../volume-server.js';
import type { VolumeTable } from '../table-snapshot.js';
import type { FdLimits } from '../passthrough.js';
import { testRelayBinary } from './relay-binary.js';

export interface Loopback {
  /** Mount point of each volume, by index. */
  mountPoints: string[];
  relay: FuseRelay;
  server: VolumeServer;
  /** Ends the host side only, as a dead supervisor would. */
  killHost(): void;
  /** A fresh server (a clone's), restored from `tables`, on a new session that starts with SYNC. */
  replaceHost(volumes: readonly ServedVolume[], tables: readonly VolumeTable[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Transports over one socket, one at a time, as a port gives one host after another:
 * each `next()` takes the bytes from then on; closing one only detaches it.
 */
function sessionsOver(sock: Socket): { next(): Transport } {
  let current: { data?: (c: Uint8Array) => void; close?: (e?: Error) => void } | undefined;
  sock.on('data', (c) => current?.data?.(c));
  sock.on('close', () => current?.close?.());
  sock.on('error', () => {});
  return {
    next() {
      const me: NonNullable<typeof current> = {};
      current = me;
      return {
        write: (d) => void (current === me && sock.write(d)),
        onData: (cb) => (me.data = cb),
        onClose: (cb) => (me.close = cb),
        close: () => {
          if (current === me) current = undefined;
        },
        backlog: () => sock.writableLength,
        pause: () => sock.pause(),
        resume: () => sock.resume(),
      };
    },
  };
}

export async function startLoopback(
  volumes: { hostPath: string; readOnly: boolean }[], owners: Owners = ownersForProcess(), limits?: FdLimits,
): Promise<Loopback> {
  const bin = await testRelayBinary();
  if (!bin.path) throw new Error(bin.why);
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-vol-'));
  chmodSync(dir, 0o755);
  const served = volumes.map((v, index) => ({ ...v, index }));
  const os = await fsCalls();
  const log = { warn: (m: string) => process.stderr.write(`server: ${m}\n`) };
  let server = new VolumeServer(served, os, owners, log, undefined, limits);
  const relay = new FuseRelay(bin.path, { kind: 'pipe' }, (m) => process.stderr.write(`${m}\n`));
  const mountPoints = served.map((v) => join(dir, String(v.index)));
  for (const v of served) await relay.mount({ index: v.index, mountPoint: mountPoints[v.index]!, readOnly: v.readOnly });
  const sock = relay.pipe!;
  const sessions = sessionsOver(sock);
  const connect = (restored: boolean) => server.attach(restored ? resyncingTransport(sessions.next()) : sessions.next(), { invalidate: restored });
  const kill = () => sock.destroy();
  connect(false);
  return {
    mountPoints,
    relay,
    get server() {
      return server;
    },
    killHost: () => {
      kill();
      server.close();
    },
    async replaceHost(vols, tables) {
      // As after a restore: the relay keeps its requests, the old host never answers them.
      await relay.arm();
      const old = server;
      server = new VolumeServer(vols, os, owners, log, tables);
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
}
