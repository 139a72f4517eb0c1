/**
 * Creating files as the guest caller. A root server switches its file system credentials
 * (setfsuid/setfsgid, as virtiofsd does) to the caller's for the create, so the new file
 * is the caller's and the host checks the caller's permissions; afterwards it gives back
 * the mode bits its own umask took (the guest kernel applied the guest's umask already).
 */
import { AT_SYMLINK_NOFOLLOW, type FsCalls } from '../os/fs-calls.js';
import { newStat, S_IFLNK, S_IFMT } from './host-fd.js';

/** The guest caller of a request: whose file a create makes. */
export interface Caller {
  uid: number;
  gid: number;
}

export class CallerCreds {
  private readonly umask = process.umask();

  constructor(
    private readonly os: FsCalls,
    /** Whether creates run with the caller's fsuid/fsgid (a root server). */
    private readonly switchCreds: boolean,
  ) {}

  /** Runs a create as the guest caller (root server), then switches back to root. */
  run<T>(caller: Caller, fn: () => T): T {
    if (!this.switchCreds) return fn();
    this.os.setfsgid(caller.gid);
    this.os.setfsuid(caller.uid);
    try {
      return fn();
    } finally {
      this.os.setfsuid(0);
      this.os.setfsgid(0);
    }
  }

  /** Gives a new file the mode bits the server's umask took from it (the guest applied its own). */
  restoreUmask(parent: number, name: Buffer, mode: number): void {
    const lost = mode & this.umask & 0o777;
    if (!lost) return;
    const st = newStat();
    if (this.os.fstatat(parent, name, AT_SYMLINK_NOFOLLOW, st) < 0 || (st.mode & S_IFMT) === S_IFLNK) return;
    this.os.fchmodat(parent, name, (st.mode & 0o7777) | lost, 0);
  }
}
