import type { Transport } from './transport.js';

/**
 * The session marker of a restored guest. A snapshot freezes the agent in the middle
 * of its source's session: a frame may be half-sent in either direction, and a clone's
 * guest may never see its old host hang up. So after a restore the host writes SYNC
 * and then its hello; the agent, armed for it by the snapshot, starts a new session at
 * SYNC and answers with SYNC, and the host drops whatever came before it.
 */
export const SESSION_SYNC = Buffer.from([0x00, 0xfc, 0x56, 0x4d, ...Buffer.from('-SESSION-'), 0xff, 0x5e, 0x11]);

/** Finds SYNC in a byte stream, across chunk boundaries. */
export class SyncScanner {
  private tail = Buffer.alloc(0);

  /** The bytes that follow the first SYNC, once it has been seen; undefined before. */
  push(chunk: Uint8Array): Buffer | undefined {
    const data = Buffer.concat([this.tail, chunk]);
    const at = data.indexOf(SESSION_SYNC);
    if (at >= 0) {
      this.tail = Buffer.alloc(0);
      return data.subarray(at + SESSION_SYNC.length);
    }
    this.tail = data.subarray(Math.max(0, data.length - (SESSION_SYNC.length - 1)));
    return undefined;
  }
}

/**
 * The host end of a restored guest's channel: sends SYNC first, and delivers incoming
 * bytes only from the agent's SYNC on.
 */
export function resyncingTransport(t: Transport): Transport {
  const scanner = new SyncScanner();
  let synced = false;
  let deliver: ((c: Uint8Array) => void) | undefined;
  t.onData((chunk) => {
    if (synced) return deliver?.(chunk);
    const rest = scanner.push(chunk);
    if (rest === undefined) return;
    synced = true;
    if (rest.length > 0) deliver?.(rest);
  });
  t.write(SESSION_SYNC);
  return {
    write: (d) => t.write(d),
    onData: (cb) => (deliver = cb),
    onClose: (cb) => t.onClose(cb),
    close: () => t.close(),
    ...(t.backlog ? { backlog: () => t.backlog!() } : {}),
    ...(t.onceDrained ? { onceDrained: (cb: () => void) => t.onceDrained!(cb) } : {}),
    ...(t.pause ? { pause: () => t.pause!(), resume: () => t.resume?.() } : {}),
  };
}
