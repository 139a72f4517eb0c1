/**
 * The passthrough's inode and handle tables. An inode is an O_PATH descriptor of a host
 * file, keyed by (st_dev, st_ino) so that every name of one host file (hard links, a
 * rename on either side) maps to one nodeid, with the kernel's lookup count: FORGET
 * lowers it, and at zero the descriptor is closed. Nodeids are never reused in a
 * session (a clone's table continues the counter), so a stale nodeid can never name
 * another file. Both tables are bounded: a guest cannot make the host hold descriptors
 * without limit.
 */
import { E } from './abi.js';
import { FsError } from './fs-error.js';

export interface Inode {
  readonly nodeid: bigint;
  /** O_PATH|O_NOFOLLOW descriptor, or -1 while a restored inode is not reopened yet. */
  fd: number;
  key: string;
  nlookup: bigint;
  /** Set for a restored inode: its path below the root, reopened on first use. */
  restorePath?: string;
}

export interface Handle {
  readonly fh: bigint;
  readonly nodeid: bigint;
  /** An ordinary descriptor (not O_PATH), or -1 while a restored handle is not reopened. */
  fd: number;
  /** The guest's open flags, so a restored handle can be reopened. */
  readonly flags: number;
  readonly dir: boolean;
  /** Directory reading state: buffered entries and the offset after them. */
  dirState?: { pos: bigint; buf: Buffer; at: number; end: number };
  /**
   * Reads, writes and syncs in progress on `fd` in the thread pool. A RELEASE that comes
   * while some are (the kernel never sends one, a hostile guest may) closes `fd` only
   * after them: a descriptor number closed under a pending read could be reused for
   * another file, which the read would then return to the guest.
   */
  busy: number;
  released: boolean;
}

/** Inodes a volume tracks (memory); how many of them hold a descriptor is the passthrough's LRU. */
export const MAX_INODES = 262_144;

export class InodeTable {
  private readonly byId = new Map<bigint, Inode>();
  private readonly byKeyMap = new Map<string, Inode>();
  private nextId = 2n;

  constructor(
    private readonly closeFd: (fd: number) => void,
    private readonly onRemove: (i: Inode) => void = () => {},
  ) {}

  get size(): number {
    return this.byId.size;
  }

  get(nodeid: bigint): Inode | undefined {
    return this.byId.get(nodeid);
  }

  /** The inode of the host file `key` (st_dev:st_ino), if the guest knows it. */
  byKey(key: string): Inode | undefined {
    return this.byKeyMap.get(key);
  }

  /** The inode, or ESTALE for a nodeid the server does not know (a hostile or stale one). */
  require(nodeid: bigint): Inode {
    const i = this.byId.get(nodeid);
    if (!i) throw new FsError(E.ESTALE, `unknown nodeid ${nodeid}`);
    return i;
  }

  /** Registers the root (nodeid 1); the table owns `fd` from now on. */
  setRoot(fd: number, key: string): Inode {
    const root: Inode = { nodeid: 1n, fd, key, nlookup: 1n };
    this.byId.set(1n, root);
    this.byKeyMap.set(key, root);
    return root;
  }

  /**
   * One more lookup of the host file `key`, opened as `fd`. If the file is known, `fd`
   * is closed and the known inode counted; otherwise `fd` becomes a new inode.
   */
  lookedUp(key: string, fd: number): Inode {
    const known = this.byKeyMap.get(key);
    if (known) {
      if (known.fd < 0) known.fd = fd;
      else this.closeFd(fd);
      known.nlookup++;
      return known;
    }
    if (this.byId.size >= MAX_INODES) {
      this.closeFd(fd);
      throw new FsError(E.ENFILE, 'too many inodes held for this guest');
    }
    const inode: Inode = { nodeid: this.nextId++, fd, key, nlookup: 1n };
    this.byId.set(inode.nodeid, inode);
    this.byKeyMap.set(key, inode);
    return inode;
  }

  /** The kernel dropped `n` lookups of `nodeid`; at zero the inode goes. Unknown ids are ignored. */
  forget(nodeid: bigint, n: bigint): void {
    const i = this.byId.get(nodeid);
    if (!i || nodeid === 1n) return;
    i.nlookup = n >= i.nlookup ? 0n : i.nlookup - n;
    if (i.nlookup > 0n) return;
    this.byId.delete(nodeid);
    if (this.byKeyMap.get(i.key) === i) this.byKeyMap.delete(i.key);
    if (i.fd >= 0) this.closeFd(i.fd);
    this.onRemove(i);
  }

  /** Every inode, for a snapshot of the table. */
  all(): IterableIterator<Inode> {
    return this.byId.values();
  }

  /** A restored inode: same nodeid and count as in the snapshot, reopened lazily. */
  restore(nodeid: bigint, nlookup: bigint, path: string): void {
    const inode: Inode = { nodeid, fd: -1, key: `restored:${nodeid}`, nlookup, restorePath: path };
    this.byId.set(nodeid, inode);
    if (nodeid >= this.nextId) this.nextId = nodeid + 1n;
  }

  /** After reopening a restored inode: key it by its real identity. */
  rekey(inode: Inode, key: string): void {
    if (this.byKeyMap.get(inode.key) === inode) this.byKeyMap.delete(inode.key);
    inode.key = key;
    if (!this.byKeyMap.has(key)) this.byKeyMap.set(key, inode);
  }

  get counter(): bigint {
    return this.nextId;
  }

  set counter(v: bigint) {
    if (v > this.nextId) this.nextId = v;
  }

  closeAll(): void {
    for (const i of this.byId.values()) if (i.fd >= 0) this.closeFd(i.fd);
    this.byId.clear();
    this.byKeyMap.clear();
  }
}

export class HandleTable {
  private readonly byFh = new Map<bigint, Handle>();
  private nextFh = 1n;

  constructor(
    private readonly closeFd: (fd: number) => void,
    private readonly max: number,
  ) {}

  get size(): number {
    return this.byFh.size;
  }

  add(nodeid: bigint, fd: number, flags: number, dir: boolean): Handle {
    if (this.byFh.size >= this.max) {
      this.closeFd(fd);
      throw new FsError(E.EMFILE, 'too many open files for this guest');
    }
    const h: Handle = { fh: this.nextFh++, nodeid, fd, flags, dir, busy: 0, released: false };
    this.byFh.set(h.fh, h);
    return h;
  }

  /** The handle `fh` (of the right kind), or EBADF. */
  require(fh: bigint, dir: boolean): Handle {
    const h = this.byFh.get(fh);
    if (!h || h.dir !== dir) throw new FsError(E.EBADF, `unknown ${dir ? 'directory' : 'file'} handle ${fh}`);
    return h;
  }

  /** A file handle that must be of inode `nodeid` (a lock request's: the kernel never sends another's). */
  requireOf(fh: bigint, nodeid: bigint): Handle {
    const h = this.require(fh, false);
    if (h.nodeid !== nodeid) throw new FsError(E.EBADF, `handle ${fh} is not of node ${nodeid}`);
    return h;
  }

  get(fh: bigint): Handle | undefined {
    return this.byFh.get(fh);
  }

  release(fh: bigint, dir: boolean): void {
    const h = this.byFh.get(fh);
    if (!h || h.dir !== dir) return;
    this.byFh.delete(fh);
    h.released = true;
    if (h.busy === 0 && h.fd >= 0) this.closeFd(h.fd);
  }

  /** Runs `io` on the handle's descriptor, holding the descriptor open until it ends. */
  async using<T>(h: Handle, io: () => Promise<T>): Promise<T> {
    h.busy++;
    try {
      return await io();
    } finally {
      if (--h.busy === 0 && h.released && h.fd >= 0) this.closeFd(h.fd);
    }
  }

  all(): IterableIterator<Handle> {
    return this.byFh.values();
  }

  restore(fh: bigint, nodeid: bigint, flags: number, dir: boolean): void {
    this.byFh.set(fh, { fh, nodeid, fd: -1, flags, dir, busy: 0, released: false });
    if (fh >= this.nextFh) this.nextFh = fh + 1n;
  }

  get counter(): bigint {
    return this.nextFh;
  }

  set counter(v: bigint) {
    if (v > this.nextFh) this.nextFh = v;
  }

  closeAll(): void {
    for (const h of this.byFh.values()) {
      h.released = true;
      if (h.fd >= 0 && h.busy === 0) this.closeFd(h.fd);
    }
    this.byFh.clear();
  }
}
