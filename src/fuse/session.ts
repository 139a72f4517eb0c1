/**
 * The request dispatcher of one volume: decodes each FUSE request (codec.ts), calls the
 * passthrough, encodes the reply. Requests are answered out of order as they finish;
 * a request that fails in any way is answered with an errno, never left unanswered,
 * and nothing a request holds can throw past this layer.
 */
import {
  E, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, FUSE_MIN_MINOR, FUSE_GETATTR_FH, FUSE_OPEN_KILL_SUIDGID, FUSE_WRITE_KILL_SUIDGID,
  FOPEN_KEEP_CACHE, INIT, MAX_PAGES, MAX_WRITE, Op, XATTR_SIZE_MAX,
} from './abi.js';
import { ArgReader, DecodeError, decodeRequest, OutWriter, replyParts, type InHeader } from './codec.js';
import { invalEntry, invalInode } from './notes.js';
import { isEmptyExactDir, readDirectory } from './dir-reader.js';
import { FsError } from './fs-error.js';
import type { Passthrough, SetAttr } from './passthrough.js';
import { attrOut, decodeDev, entryOut, initOut, lkOut, openOut, statfsOut, u64Out, writeOut, xattrSizeOut, type Timeouts } from './replies.js';
import { FUSE_LK_FLOCK } from './locks.js';
import { decodeSetattr } from './set-attr.js';
import type { HostChange } from './host-changes.js';
import { invalidations } from './table-snapshot.js';
import { NO_HINTS, type RelayHints } from './relay-hints.js';

/** How long the guest may cache names and attributes of a volume whose host changes are not watched. */
export const DEFAULT_TIMEOUTS: Timeouts = { entry: 1, attr: 1 };
/**
 * ... and of one whose host changes are watched (host-changes.ts): a host change drops
 * the guest's cache when it happens; this bounds what inotify cannot see.
 */
export const WATCHED_TIMEOUTS: Timeouts = { entry: 30, attr: 30 };
/** Requests being served at once for one volume; more are refused with EAGAIN. */
export const MAX_IN_FLIGHT = 1024;

/**
 * The flags fcvm asks for. No writeback cache: with it the guest keeps its own size of
 * a cached file over the host's, even after INVAL_INODE (fuse_change_attributes), and on
 * Linux 6.1 it saves no round trip (measured: README, "Volumes").
 * HANDLE_KILLPRIV_V2: the server drops suid/sgid on write, truncate and chown, so the
 * guest kernel skips its own check (a GETXATTR and maybe a SETATTR) on every write.
 */
const WANTED = INIT.ASYNC_READ | INIT.BIG_WRITES | INIT.AUTO_INVAL_DATA | INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO
  | INIT.PARALLEL_DIROPS | INIT.MAX_PAGES | INIT.ATOMIC_O_TRUNC | INIT.ASYNC_DIO | INIT.CACHE_SYMLINKS
  | INIT.POSIX_LOCKS | INIT.FLOCK_LOCKS | INIT.HANDLE_KILLPRIV_V2;

type Body = Buffer | Buffer[] | undefined;

export interface SessionLog {
  warn(msg: string): void;
}

/** What the kernel and the server agreed in INIT; kept in a snapshot so a clone's server skips INIT. */
export interface Negotiated {
  minor: number;
}

/** Requests served per opcode, and the host's time on them (to tell it from the channel's). */
export type OpStats = Map<number, { count: number; ms: number }>;

export class VolumeSession {
  private inFlight = 0;
  readonly stats: OpStats = new Map();
  negotiated: Negotiated | undefined;
  private readonly owners;

  constructor(
    readonly fs: Passthrough,
    /** Writes one message given as parts (replyParts), in order. */
    private readonly send: (parts: Buffer[]) => void,
    private readonly log: SessionLog,
    /** Fixed cache lifetimes; by default they follow whether host changes are watched. */
    private readonly fixedTimeouts?: Timeouts,
    /** Sent to the guest relay ahead of the reply that follows. */
    private readonly hints: RelayHints = NO_HINTS,
  ) {
    this.owners = fs.opts.owners;
  }

  /** Serves one whole request (one /dev/fuse read's bytes). */
  handle(buf: Buffer): void {
    let header: InHeader;
    let args: ArgReader;
    try {
      ({ header, args } = decodeRequest(buf));
    } catch (e) {
      // Answer what can be answered; the kernel drops a reply to an unknown unique.
      if (buf.length >= 16) this.send(replyParts(buf.readBigUInt64LE(8), (e as DecodeError).errno ?? E.EPROTO));
      return;
    }
    const op = header.opcode;
    if (op === Op.FORGET || op === Op.BATCH_FORGET || op === Op.INTERRUPT) {
      try {
        if (op === Op.FORGET) this.fs.forget(header.nodeid, args.u64());
        else if (op === Op.BATCH_FORGET) this.batchForget(args);
        // INTERRUPT: only a waiting lock waits without end; every other request ends on its own.
        else this.fs.locks.interrupt(args.u64());
      } catch {
        // No reply to these, even when malformed.
      }
      return;
    }
    if (this.inFlight >= MAX_IN_FLIGHT) return this.send(replyParts(header.unique, E.EAGAIN));
    this.inFlight++;
    const t0 = performance.now();
    const done = (err: number, body?: Body) => {
      this.inFlight--;
      const s = this.stats.get(op) ?? { count: 0, ms: 0 };
      s.count++;
      s.ms += performance.now() - t0;
      this.stats.set(op, s);
      this.send(replyParts(header.unique, err, body));
    };
    const fail = (e: unknown) => {
      if (e instanceof FsError || e instanceof DecodeError) return done(e.errno);
      this.log.warn(`volume request ${Op[op] ?? op} failed: ${(e as Error)?.stack ?? e}`);
      done(E.EIO);
    };
    try {
      const r = this.dispatch(header, args);
      if (r instanceof Promise) r.then((body) => done(0, body), fail);
      else done(0, r);
    } catch (e) {
      fail(e);
    }
  }

  private get timeouts(): Timeouts {
    return this.fixedTimeouts ?? (this.fs.watching ? WATCHED_TIMEOUTS : DEFAULT_TIMEOUTS);
  }

  /** What the guest must drop after a change on the host (host-changes.ts). */
  *hostChanged(c: HostChange): Generator<Buffer> {
    if (c.kind === 'all') return yield* invalidations(this);
    if (c.kind === 'inode') return yield invalInode(c.nodeid, !c.data);
    // The name; the directory's attributes too (the relay drops its hint of them on this).
    yield invalEntry(c.dir, c.name.subarray(0, c.name.indexOf(0) < 0 ? c.name.length : c.name.indexOf(0)));
    yield invalInode(c.dir, true);
  }

  /**
   * An access ACL set or removed on the host changed the file's mode bits too (as
   * setfacl, and cp -p through it, rely on), which the guest kernel does not know: it
   * only drops its cached ctime after SETXATTR. Its cached attributes go, ahead of the
   * reply (the relay writes this note before the reply: link.c, settles).
   */
  private aclChanged(id: bigint, name: Buffer): undefined {
    if (name.toString('latin1') === 'system.posix_acl_access') this.send([invalInode(id, true)]);
    return undefined;
  }

  /**
   * A request changed directory `dir` (a name added or removed): its attributes go
   * ahead of the reply, as after a WRITE. The guest kernel drops the directory's
   * attributes on that reply, and needs them again for the permission check of the
   * next path walk through it (default_permissions): the relay answers from this.
   */
  private dirChanged<T>(dir: bigint, reply: T): T {
    try {
      this.hints.attr(dir, attrOut(this.fs.getattr(dir, undefined), this.owners, this.timeouts));
    } catch {
      // The change happened; without attributes the guest asks for them itself.
    }
    return reply;
  }

  private batchForget(a: ArgReader): void {
    const count = a.u32();
    a.u32();
    if (count > a.remaining / 16) throw new DecodeError('batch_forget count exceeds the request');
    for (let i = 0; i < count; i++) this.fs.forget(a.u64(), a.u64());
  }

  private entry(r: { inode: { nodeid: bigint }; st: Parameters<typeof entryOut>[1] }): Buffer {
    return entryOut(r.inode.nodeid, r.st, this.owners, this.timeouts);
  }

  private dispatch(h: InHeader, a: ArgReader): Body | Promise<Body> {
    const fs = this.fs;
    const id = h.nodeid;
    const caller = { uid: h.uid, gid: h.gid };
    if (h.opcode !== Op.INIT && !this.negotiated) throw new FsError(E.EIO, 'request before INIT');
    switch (h.opcode as Op) {
      case Op.INIT:
        return this.init(a);
      case Op.DESTROY:
        return undefined;
      case Op.LOOKUP: {
        const name = a.name();
        try {
          return this.entry(fs.lookup(id, name));
        } catch (e) {
          // A negative entry, cached as long as a positive one.
          if (e instanceof FsError && e.errno === E.ENOENT) return entryOut(0n, undefined, this.owners, this.timeouts);
          throw e;
        }
      }
      case Op.GETATTR: {
        const flags = a.u32();
        a.u32();
        const fh = a.u64();
        return attrOut(fs.getattr(id, flags & FUSE_GETATTR_FH ? fh : undefined), this.owners, this.timeouts);
      }
      case Op.SETATTR:
        return attrOut(fs.setattr(id, decodeSetattr(a)), this.owners, this.timeouts);
      case Op.READLINK:
        return fs.readlink(id);
      case Op.SYMLINK: {
        const name = a.name();
        const target = a.linkTarget();
        return this.dirChanged(id, this.entry(fs.symlink(id, name, target, caller)));
      }
      case Op.MKNOD: {
        const mode = a.u32();
        const rdev = a.u32();
        a.u32();
        a.u32();
        return this.dirChanged(id, this.entry(fs.mknod(id, a.name(), mode, decodeDev(rdev), caller)));
      }
      case Op.MKDIR: {
        const mode = a.u32();
        a.u32();
        const made = fs.mkdir(id, a.name(), mode, caller);
        // Watched from its birth and still empty: the relay may answer LOOKUPs in it as absent.
        if (fs.watching && this.timeouts.entry > 0 && isEmptyExactDir(fs, made.inode.nodeid)) this.hints.emptyDir(made.inode.nodeid, this.timeouts.entry);
        return this.dirChanged(id, this.entry(made));
      }
      case Op.UNLINK:
      case Op.RMDIR:
        fs.unlink(id, a.name(), h.opcode === Op.RMDIR);
        return this.dirChanged(id, undefined);
      case Op.RENAME:
      case Op.RENAME2: {
        const newdir = a.u64();
        const flags = h.opcode === Op.RENAME2 ? a.u32() : 0;
        if (h.opcode === Op.RENAME2) a.u32();
        const name = a.name();
        fs.rename(id, name, newdir, a.name(), flags);
        if (newdir !== id) this.dirChanged(newdir, undefined);
        return this.dirChanged(id, undefined);
      }
      case Op.LINK: {
        const old = a.u64();
        return this.dirChanged(id, this.entry(fs.link(old, id, a.name())));
      }
      case Op.OPEN: {
        const flags = a.u32();
        const openFlags = a.u32();
        return openOut(fs.open(id, flags, (openFlags & FUSE_OPEN_KILL_SUIDGID) !== 0).fh, FOPEN_KEEP_CACHE);
      }
      case Op.CREATE: {
        const flags = a.u32();
        const mode = a.u32();
        a.u32();
        const openFlags = a.u32();
        const r = fs.create(id, a.name(), flags, mode, caller, (openFlags & FUSE_OPEN_KILL_SUIDGID) !== 0);
        return this.dirChanged(id, [this.entry(r), openOut(r.handle.fh, FOPEN_KEEP_CACHE)]);
      }
      case Op.READ: {
        const fh = a.u64();
        const offset = a.offset();
        const size = a.u32();
        if (size > MAX_WRITE) throw new DecodeError(`read of ${size} bytes`);
        return fs.read(fh, offset, size);
      }
      case Op.WRITE: {
        const fh = a.u64();
        const offset = a.offset();
        const size = a.u32();
        const writeFlags = a.u32();
        a.skip(8 + 4 + 4);
        const data = a.rest();
        if (data.length !== size) throw new DecodeError(`write says ${size} bytes but carries ${data.length}`);
        return fs.write(fh, offset, data, (writeFlags & FUSE_WRITE_KILL_SUIDGID) !== 0).then(({ written, st }) => {
          // Ahead of the reply: the guest kernel drops the file's attributes when it gets it.
          if (st) this.hints.attr(id, attrOut(st, this.owners, this.timeouts));
          return writeOut(written);
        });
      }
      case Op.FLUSH: {
        fs.file(a.u64());
        a.u64();
        // Closing any descriptor of a file drops its POSIX locks (the owner's).
        fs.locks.flush(id, a.u64());
        return undefined;
      }
      case Op.GETLK:
      case Op.SETLK:
      case Op.SETLKW: {
        const fh = a.u64();
        const owner = a.u64();
        const lk = { start: a.u64(), end: a.u64(), type: a.u32(), pid: a.u32() };
        const flags = a.u32();
        if (lk.type > 2) throw new DecodeError(`lock type ${lk.type}`);
        if (h.opcode === Op.GETLK) {
          const r = fs.getlk(id, fh, owner, lk);
          return lkOut(r.start, r.end, r.type, r.pid);
        }
        const r = fs.setlk(h.unique, id, fh, owner, lk, (flags & FUSE_LK_FLOCK) !== 0, h.opcode === Op.SETLKW);
        return r instanceof Promise ? r.then(() => undefined) : undefined;
      }
      case Op.FSYNC:
      case Op.FSYNCDIR: {
        const fh = a.u64();
        const flags = a.u32();
        return fs.fsync(fh, (flags & 1) !== 0, h.opcode === Op.FSYNCDIR).then(() => undefined);
      }
      case Op.RELEASE:
      case Op.RELEASEDIR:
        fs.release(a.u64(), h.opcode === Op.RELEASEDIR);
        return undefined;
      case Op.OPENDIR:
        return openOut(fs.opendir(id).fh, 0);
      case Op.READDIR:
      case Op.READDIRPLUS: {
        const fh = a.u64();
        const offset = a.u64();
        const size = a.u32();
        if (size > MAX_WRITE) throw new DecodeError(`readdir of ${size} bytes`);
        return readDirectory(fs, fh, offset, size, h.opcode === Op.READDIRPLUS, this.owners, this.timeouts);
      }
      case Op.STATFS:
        return statfsOut(fs.statfs(id));
      case Op.ACCESS:
        // default_permissions: the guest kernel checks permissions itself.
        throw new FsError(E.ENOSYS);
      case Op.GETXATTR:
      case Op.LISTXATTR: {
        const size = a.u32();
        a.u32();
        if (size > XATTR_SIZE_MAX) throw new DecodeError('xattr buffer too large', E.ERANGE);
        const r = h.opcode === Op.GETXATTR ? fs.xattrs.get(id, a.cstring(255), size) : fs.xattrs.list(id, size);
        return typeof r === 'number' ? xattrSizeOut(r) : r;
      }
      case Op.SETXATTR: {
        const size = a.u32();
        const flags = a.u32();
        // fuse_setxattr_in grew by 8 bytes with SETXATTR_EXT, which fcvm does not ask for.
        if (size > XATTR_SIZE_MAX) throw new DecodeError('xattr value too large', E.ERANGE);
        const name = a.cstring(255);
        const value = a.bytes(size);
        fs.xattrs.set(id, Buffer.concat([name, Buffer.alloc(1)]), value, flags);
        return this.aclChanged(id, name);
      }
      case Op.REMOVEXATTR: {
        const name = a.cstring(255);
        fs.xattrs.remove(id, Buffer.concat([name, Buffer.alloc(1)]));
        return this.aclChanged(id, name);
      }
      case Op.FALLOCATE: {
        const fh = a.u64();
        const offset = a.offset();
        const length = a.offset();
        const mode = a.u32();
        fs.fallocate(fh, mode, offset, length);
        return undefined;
      }
      case Op.LSEEK: {
        const fh = a.u64();
        const offset = a.offset();
        const whence = a.u32();
        // SEEK_SET/CUR/END are the guest kernel's business; only DATA and HOLE come here.
        if (whence !== 3 && whence !== 4) throw new FsError(E.EINVAL);
        return u64Out(fs.lseek(fh, offset, whence));
      }
      case Op.COPY_FILE_RANGE: {
        const fhIn = a.u64();
        const offIn = a.offset();
        a.u64();
        const fhOut = a.u64();
        const offOut = a.offset();
        const len = a.offset();
        const flags = Number(a.u64() & 0xffffffffn);
        return writeOut(fs.copyFileRange(fhIn, offIn, fhOut, offOut, Math.min(len, 0xffffffff), flags));
      }
      case Op.SYNCFS:
        return fs.syncfs().then(() => undefined);
      default:
        // IOCTL, POLL, BMAP, TMPFILE...
        throw new FsError(E.ENOSYS);
    }
  }

  private init(a: ArgReader): Buffer {
    const major = a.u32();
    const minor = a.u32();
    const maxReadahead = a.u32();
    const flags = a.u32();
    if (major < FUSE_KERNEL_VERSION) throw new FsError(E.EPROTO, `FUSE major version ${major}`);
    // A newer major: answer with ours, and the kernel decides.
    if (major > FUSE_KERNEL_VERSION) return initOut({ major: FUSE_KERNEL_VERSION, minor: FUSE_KERNEL_MINOR_VERSION, maxReadahead: 0, flags: 0, maxBackground: 0, congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0 });
    if (minor < FUSE_MIN_MINOR) throw new FsError(E.EPROTO, `FUSE minor version ${minor} is older than 7.${FUSE_MIN_MINOR}`);
    this.negotiated = { minor: Math.min(minor, FUSE_KERNEL_MINOR_VERSION) };
    return initOut({
      major: FUSE_KERNEL_VERSION,
      minor: this.negotiated.minor,
      maxReadahead,
      flags: flags & WANTED,
      maxBackground: 256,
      congestionThreshold: 192,
      maxWrite: MAX_WRITE,
      timeGran: 1,
      maxPages: MAX_PAGES,
    });
  }
}
