/**
 * The notifications the host server sends the guest kernel unasked (unique 0): what it
 * must drop of its caches. Pure encoders.
 */
import { NOTIFY } from './abi.js';
import { encodeNotify, OutWriter } from './codec.js';

/** Drops the guest's cached attributes of `nodeid`, and its pages unless `attrsOnly`. */
export function invalInode(nodeid: bigint, attrsOnly = false): Buffer {
  return encodeNotify(NOTIFY.INVAL_INODE, new OutWriter(24).u64(nodeid).i64(attrsOnly ? -1 : 0).i64(0).buf);
}

/** Drops the guest's cached name `name` (no NUL) in `parent`. */
export function invalEntry(parent: bigint, name: Buffer): Buffer {
  return encodeNotify(NOTIFY.INVAL_ENTRY, Buffer.concat([new OutWriter(16).u64(parent).u32(name.length).u32(0).buf, name, Buffer.alloc(1)]));
}
