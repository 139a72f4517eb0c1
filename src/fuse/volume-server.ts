/**
 * The host's volume server of one VM: every volume's passthrough, served over one byte
 * Transport (the VM's `fuse` channel: a virtio-serial port on QEMU, a vsock port on
 * Firecracker, a memory pair in tests). It lives as long as its supervisor; a channel
 * that breaks the framing is closed, which the guest answers with EIO.
 */
import type { FsCalls } from '../os/fs-calls.js';
import type { Transport } from '../protocol/transport.js';
import { encodeFuseFrame, FuseFrameDecoder, FuseFrameKind } from './channel-frames.js';
import type { Owners } from './owners.js';
import { Passthrough } from './passthrough.js';
import { VolumeSession, type SessionLog } from './session.js';
import { invalidations, restoreTable, snapshotTable, type VolumeTable } from './table-snapshot.js';

export interface ServedVolume {
  /** The index the guest's frames carry. */
  index: number;
  hostPath: string;
  readOnly: boolean;
}

export class VolumeServer {
  private readonly sessions = new Map<number, VolumeSession>();
  private transport: Transport | undefined;
  private readonly decoder = new FuseFrameDecoder();

  constructor(
    volumes: readonly ServedVolume[],
    os: FsCalls,
    owners: Owners,
    private readonly log: SessionLog,
    restored?: readonly VolumeTable[],
  ) {
    for (const v of volumes) {
      const fs = new Passthrough(os, { readOnly: v.readOnly, owners });
      fs.openRoot(v.hostPath);
      const session = new VolumeSession(fs, (m) => this.send(v.index, m), log);
      const table = restored?.find((t) => t.index === v.index);
      if (table) restoreTable(session, table);
      this.sessions.set(v.index, session);
    }
  }

  /**
   * Serves the guest over `t`. A restored server first tells the guest kernel to drop
   * what it cached of every file it knew: the host directory may differ now.
   */
  attach(t: Transport, opts: { invalidate?: boolean } = {}): void {
    this.transport = t;
    this.decoder.reset();
    t.onData((chunk) => {
      let frames;
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.log.warn(`volume channel closed: ${(e as Error).message}`);
        t.close();
        return;
      }
      for (const f of frames) {
        if (f.kind !== FuseFrameKind.Message) continue;
        this.sessions.get(f.volume)?.handle(f.body);
      }
    });
    t.onClose(() => {
      if (this.transport === t) this.transport = undefined;
    });
    t.write(encodeFuseFrame(0, FuseFrameKind.Hello));
    if (opts.invalidate) for (const [index, s] of this.sessions) for (const n of invalidations(s)) this.send(index, n);
  }

  private send(volume: number, message: Buffer): void {
    this.transport?.write(encodeFuseFrame(volume, FuseFrameKind.Message, message));
  }

  /** The inode and handle tables, for a snapshot (the VM is paused). */
  snapshot(): VolumeTable[] {
    return [...this.sessions].map(([index, s]) => snapshotTable(index, s));
  }

  close(): void {
    this.transport?.close();
    for (const s of this.sessions.values()) s.fs.close();
    this.sessions.clear();
  }
}
