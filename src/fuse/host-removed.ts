/**
 * Files the host replaced or removed while the guest's cache still names them. The
 * guest's kernel resolves a cached name to the old inode; the server opens that by its
 * handle. Answering such an OPEN with ESTALE makes the kernel walk the path again with
 * fresh lookups (do_filp_open's LOOKUP_REVAL retry), so it opens what the host has now,
 * as through a bind mount. A file the guest removed itself may still be reopened
 * (through /proc/PID/fd), so those inodes are remembered and left alone.
 */
import { AT_EMPTY_PATH, type FsCalls } from '../os/fs-calls.js';
import { EMPTY, newStat } from './host-fd.js';

export class HostRemoved {
  /** Inodes whose name the guest itself removed (unlink, or a rename over them). */
  private readonly byGuest = new Set<bigint>();

  constructor(private readonly os: Pick<FsCalls, 'fstatat'>) {}

  /** The guest removed the name of `nodeid` (undefined: an inode it never looked up). */
  removedByGuest(nodeid: bigint | undefined): void {
    if (nodeid !== undefined) this.byGuest.add(nodeid);
  }

  /** The inode is gone from the server's table. */
  forgotten(nodeid: bigint): void {
    this.byGuest.delete(nodeid);
  }

  /** True if `fd` (just opened for `nodeid`) is a file that is no longer linked, and not by the guest's doing. */
  isStale(nodeid: bigint, fd: number): boolean {
    if (this.byGuest.has(nodeid)) return false;
    const st = newStat();
    return this.os.fstatat(fd, EMPTY, AT_EMPTY_PATH, st) >= 0 && st.nlink === 0;
  }
}
