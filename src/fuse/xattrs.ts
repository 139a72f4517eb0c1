/**
 * A volume's extended attributes. The xattr calls have no *at() form, so they go through
 * the inode's /proc/self/fd path. A symlink is never reached that way (its path would be
 * followed on the host): it is answered as Linux answers for a symlink without
 * attributes, which user.* ones cannot be on. Guest root must not
 * grant host privileges through the volume, so security.* and trusted.* attributes are
 * never set or removed, and security.capability is never shown.
 */
import type { FsCalls } from '../os/fs-calls.js';
import { E, XATTR_CAPS } from './abi.js';
import { check, FsError } from './fs-error.js';
import { procPath, S_IFLNK, S_IFMT, statFd } from './host-fd.js';

export class Xattrs {
  constructor(
    private readonly os: FsCalls,
    /** The inode's O_PATH descriptor (ESTALE for an unknown one). */
    private readonly fdOf: (nodeid: bigint) => number,
    /** Throws EROFS on a read-only volume. */
    private readonly writable: () => void,
    /** Runs a change of the server's own to inode `nodeid` (not reported back as a host change). */
    private readonly own: <T>(nodeid: bigint, fn: () => T) => T = (_n, fn) => fn(),
  ) {}

  /**
   * security.capability is never shown: a host file's capabilities do not apply in the
   * guest (and the guest relay answers the kernel's question for it before each first
   * write itself, without asking).
   */
  get(nodeid: bigint, name: Buffer, size: number): number | Buffer {
    const path = this.path(nodeid, E.ENODATA);
    if (name.toString('latin1') === XATTR_CAPS) throw new FsError(E.ENODATA);
    if (size === 0) return check(this.os.getxattr(path, name, null));
    const buf = Buffer.allocUnsafe(size);
    return buf.subarray(0, check(this.os.getxattr(path, name, buf)));
  }

  list(nodeid: bigint, size: number): number | Buffer {
    if (this.isSymlink(nodeid)) return size === 0 ? 0 : Buffer.alloc(0);
    const path = this.path(nodeid, E.ENODATA);
    // The whole list, without security.capability; its length is the answer to a size probe.
    let all: Buffer;
    for (;;) {
      const n = check(this.os.listxattr(path, null));
      all = Buffer.allocUnsafe(Math.max(n, 1));
      const r = this.os.listxattr(path, all);
      if (r === -E.ERANGE) continue;
      all = all.subarray(0, check(r));
      break;
    }
    const names = [];
    for (let at = 0; at < all.length; ) {
      const end = all.indexOf(0, at);
      const stop = end < 0 ? all.length : end + 1;
      if (all.subarray(at, stop - 1).toString('latin1') !== XATTR_CAPS) names.push(all.subarray(at, stop));
      at = stop;
    }
    const list = Buffer.concat(names);
    if (size === 0) return list.length;
    if (list.length > size) throw new FsError(E.ERANGE);
    return list;
  }

  set(nodeid: bigint, name: Buffer, value: Buffer, flags: number): void {
    this.writable();
    refuseDangerousXattr(name);
    const path = this.path(nodeid, E.EPERM);
    this.own(nodeid, () => check(this.os.setxattr(path, name, value, flags)));
  }

  remove(nodeid: bigint, name: Buffer): void {
    this.writable();
    refuseDangerousXattr(name);
    const path = this.path(nodeid, E.EPERM);
    this.own(nodeid, () => check(this.os.removexattr(path, name)));
  }

  /** The path the xattr calls use (they have no *at() form); a symlink throws `forSymlink`. */
  private path(nodeid: bigint, forSymlink: number): Buffer {
    if (this.isSymlink(nodeid)) throw new FsError(forSymlink);
    return procPath(this.fdOf(nodeid));
  }

  private isSymlink(nodeid: bigint): boolean {
    return (statFd(this.os, this.fdOf(nodeid)).mode & S_IFMT) === S_IFLNK;
  }
}

/**
 * Guest root must not grant host privileges through the volume: file capabilities
 * (security.capability) and other security.* / trusted.* attributes are refused.
 */
function refuseDangerousXattr(name: Buffer): void {
  const s = name.toString('latin1');
  if (s.startsWith('security.') || s.startsWith('trusted.')) throw new FsError(E.EPERM, `xattr ${s} is refused`);
}
