/**
 * Changes made on the host side of a volume, told to the guest as they happen, so the
 * guest may cache names and attributes for long (WATCHED_TIMEOUTS) instead of asking
 * the host again every second.
 *
 * Every directory the guest knows (and the root) has an inotify watch, one inotify
 * instance per VM server. A change the server did not make itself drops what the guest
 * cached of it: a name added, removed or moved in a directory drops that name and the
 * directory's attributes (FUSE_NOTIFY_INVAL_ENTRY and INVAL_INODE), a write drops the
 * file's attributes and pages, an attribute change its attributes. Events are read
 * every POLL_MS, after each of the server's own changes, and before the reply to a lock
 * or an open: a guest process that locks a file after a host process wrote it and
 * unlocked (a database), or opens it after the host closed it, reads the host's data
 * (the guest relay writes these notes to its kernel before such a reply).
 *
 * The server's own changes (the guest's requests) must not drop the guest's cache, or
 * caching would gain nothing. They are told apart exactly: inotify queues an event
 * before the system call that caused it returns, so a request marks the names and
 * inodes it changes while it runs (`own`), and the events read when it ends that name
 * a marked name or inode are its own and dropped. A host change to the same name in
 * that same moment is dropped with them; the guest's cache of it then lasts at most
 * the timeout.
 *
 * What inotify cannot see, the guest sees when its cache times out: writes through a
 * shared mmap on the host, a change made through a hard link in a directory the guest
 * never looked into, changes made by other machines to a network file system (whose
 * volumes are not watched at all: they keep the 1 s timeouts).
 */
import { errnoName } from '../os/ffi.js';
import type { FsCalls } from '../os/fs-calls.js';
import { procPath } from './host-fd.js';

/** inotify(7) event bits. */
export const IN = {
  MODIFY: 0x2, ATTRIB: 0x4, MOVED_FROM: 0x40, MOVED_TO: 0x80, CREATE: 0x100, DELETE: 0x200,
  Q_OVERFLOW: 0x4000, IGNORED: 0x8000, ONLYDIR: 0x1000000, EXCL_UNLINK: 0x4000000,
} as const;
const NAME_EVENTS = IN.CREATE | IN.DELETE | IN.MOVED_FROM | IN.MOVED_TO;
const WATCH_MASK = IN.MODIFY | IN.ATTRIB | NAME_EVENTS | IN.ONLYDIR | IN.EXCL_UNLINK;

/** How often queued host events are read when the guest makes no changes of its own. */
export const POLL_MS = 50;
/** Watches one VM's server may hold (each pins a host inode); beyond, volumes fall back to 1 s timeouts. */
export const MAX_WATCHES = 65_536;

/** What a change of the server's own names or touches. */
export type Mark = { dir: bigint; name: Buffer } | { node: bigint };

/** What the guest must drop. */
export type HostChange =
  | { kind: 'entry'; dir: bigint; name: Buffer }
  | { kind: 'inode'; nodeid: bigint; data: boolean }
  | { kind: 'all' };

/** One volume as the watcher sees it. */
export interface ChangeTarget {
  /** The nodeid the server knows for `name` (NUL-terminated) in directory `dir`, if any. */
  child(dir: bigint, name: Buffer): bigint | undefined;
  /** Tells the guest to drop what it cached of `c`. */
  changed(c: HostChange): void;
}

/** The passthrough's view of the watcher, for one volume. */
export interface ChangeWatch {
  /** True while every directory the guest knows is watched: long timeouts are safe. */
  readonly watching: boolean;
  watch(nodeid: bigint, fd: number): void;
  unwatch(nodeid: bigint): void;
  /** Tells the guest now of every host change queued so far (before a reply that must see them). */
  sync(): void;
  /** Runs a change of the server's own; the events it caused are dropped. */
  own<T>(marks: readonly Mark[], fn: () => T): T;
  ownAsync<T>(marks: readonly Mark[], fn: () => Promise<T>): Promise<T>;
}

/** No watching: the guest keeps its short timeouts. */
export const NO_WATCH: ChangeWatch = {
  watching: false,
  watch() {},
  unwatch() {},
  sync() {},
  own: (_m, fn) => fn(),
  ownAsync: (_m, fn) => fn(),
};

const nameKey = (vol: number, dir: bigint, name: Buffer): string => {
  const end = name.indexOf(0);
  return `n${vol}:${dir}/${(end < 0 ? name : name.subarray(0, end)).toString('latin1')}`;
};
const nodeKey = (vol: number, node: bigint): string => `i${vol}:${node}`;

interface Watched {
  vol: number;
  nodeid: bigint;
  target: ChangeTarget;
}

export class HostChanges {
  private fd: number;
  private healthy: boolean;
  /** Watch descriptor to the (volume, nodeid)s it stands for (two volumes may share a host directory). */
  private readonly byWd = new Map<number, Watched[]>();
  private readonly wdOf = new Map<string, number>();
  private readonly marks = new Map<string, number>();
  private readonly targets = new Map<number, ChangeTarget>();
  private readonly buf = Buffer.allocUnsafe(64 * 1024);
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly os: FsCalls,
    private readonly warn: (msg: string) => void,
  ) {
    this.fd = os.inotifyInit();
    this.healthy = this.fd >= 0;
    if (this.fd < 0) this.warn(`volumes: host changes are not watched (inotify_init1: ${errnoName(-this.fd)}); the guest sees host edits within 1 s`);
    else (this.timer = setInterval(() => this.drain(), POLL_MS)).unref();
  }

  /** The watcher of volume `vol`, or NO_WATCH when host changes cannot be watched. */
  forVolume(vol: number, target: ChangeTarget): ChangeWatch {
    if (this.fd < 0) return NO_WATCH;
    this.targets.set(vol, target);
    const self = this;
    return {
      get watching() {
        return self.healthy;
      },
      watch: (nodeid, fd) => this.watch(vol, nodeid, fd, target),
      unwatch: (nodeid) => this.unwatch(vol, nodeid),
      sync: () => this.drain(),
      own: (marks, fn) => {
        const keys = this.mark(vol, marks);
        try {
          return fn();
        } finally {
          this.settle(keys);
        }
      },
      ownAsync: async (marks, fn) => {
        const keys = this.mark(vol, marks);
        try {
          return await fn();
        } finally {
          this.settle(keys);
        }
      },
    };
  }

  private watch(vol: number, nodeid: bigint, fd: number, target: ChangeTarget): void {
    const key = nodeKey(vol, nodeid);
    if (!this.healthy || this.wdOf.has(key)) return;
    if (this.wdOf.size >= MAX_WATCHES) return this.degrade(`${MAX_WATCHES} directories are watched already`);
    const wd = this.os.inotifyAddWatch(this.fd, procPath(fd), WATCH_MASK);
    if (wd < 0) return this.degrade(`inotify_add_watch: ${errnoName(-wd)}${wd === -28 ? ' (raise fs.inotify.max_user_watches)' : ''}`);
    this.wdOf.set(key, wd);
    const list = this.byWd.get(wd) ?? [];
    list.push({ vol, nodeid, target });
    this.byWd.set(wd, list);
  }

  private unwatch(vol: number, nodeid: bigint): void {
    const key = nodeKey(vol, nodeid);
    const wd = this.wdOf.get(key);
    if (wd === undefined) return;
    this.wdOf.delete(key);
    const list = (this.byWd.get(wd) ?? []).filter((w) => w.vol !== vol || w.nodeid !== nodeid);
    if (list.length > 0) return void this.byWd.set(wd, list);
    this.byWd.delete(wd);
    this.os.inotifyRmWatch(this.fd, wd);
  }

  /** Watches already made stay; new directories are not watched, so new replies get short timeouts. */
  private degrade(why: string): void {
    if (!this.healthy) return;
    this.healthy = false;
    this.warn(`volumes: host changes are no longer all watched (${why}); the guest sees host edits within 1 s`);
  }

  private mark(vol: number, marks: readonly Mark[]): string[] {
    const keys = marks.map((m) => ('node' in m ? nodeKey(vol, m.node) : nameKey(vol, m.dir, m.name)));
    for (const k of keys) this.marks.set(k, (this.marks.get(k) ?? 0) + 1);
    return keys;
  }

  /** After a change of the server's own: its events are queued now; read them while its marks hold. */
  private settle(keys: string[]): void {
    this.drain();
    for (const k of keys) {
      const n = this.marks.get(k)! - 1;
      if (n > 0) this.marks.set(k, n);
      else this.marks.delete(k);
    }
  }

  /** Reads every queued event. */
  drain(): void {
    if (this.fd < 0) return;
    for (;;) {
      const n = this.os.read(this.fd, this.buf);
      if (n <= 0) return;
      for (let off = 0; off + 16 <= n; ) {
        const wd = this.buf.readInt32LE(off);
        const mask = this.buf.readUInt32LE(off + 4);
        const len = this.buf.readUInt32LE(off + 12);
        const raw = this.buf.subarray(off + 16, Math.min(n, off + 16 + len));
        const end = raw.indexOf(0);
        // A copy: the buffer is read into again. NUL-terminated, for the *at() calls.
        const name = Buffer.concat([end < 0 ? raw : raw.subarray(0, end), Buffer.alloc(1)]);
        off += 16 + len;
        this.event(wd, mask, name);
      }
    }
  }

  private event(wd: number, mask: number, name: Buffer): void {
    if (mask & IN.Q_OVERFLOW) {
      for (const t of this.targets.values()) t.changed({ kind: 'all' });
      return;
    }
    const list = this.byWd.get(wd);
    if (!list) return;
    if (mask & IN.IGNORED) {
      // The directory is gone (or unmounted): the kernel dropped the watch.
      this.byWd.delete(wd);
      for (const w of list) this.wdOf.delete(nodeKey(w.vol, w.nodeid));
      return;
    }
    for (const w of list) this.eventOf(w, mask, name);
  }

  private eventOf(w: Watched, mask: number, name: Buffer): void {
    if (name.length === 1) {
      // The directory itself (its own mode, owner or times).
      if (mask & (IN.ATTRIB | IN.MODIFY) && !this.marks.has(nodeKey(w.vol, w.nodeid))) w.target.changed({ kind: 'inode', nodeid: w.nodeid, data: false });
      return;
    }
    if (this.marks.has(nameKey(w.vol, w.nodeid, name))) return;
    if (mask & NAME_EVENTS) return w.target.changed({ kind: 'entry', dir: w.nodeid, name });
    const child = w.target.child(w.nodeid, name);
    if (child === undefined || this.marks.has(nodeKey(w.vol, child))) return;
    w.target.changed({ kind: 'inode', nodeid: child, data: (mask & IN.MODIFY) !== 0 });
  }

  close(): void {
    clearInterval(this.timer);
    if (this.fd >= 0) this.os.close(this.fd);
    this.fd = -1;
    this.byWd.clear();
    this.wdOf.clear();
  }
}
