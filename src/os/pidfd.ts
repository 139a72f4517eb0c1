/**
 * pidfd_open(2) and pidfd_send_signal(2): a handle on a process that cannot be confused
 * with a later one of the same PID. It turns readable when the process exits.
 */
import { ffi, osError } from './ffi.js';

const NR_PIDFD_OPEN = 434;
const NR_PIDFD_SEND_SIGNAL = 424;
const PIDFD_NONBLOCK = 0o4000;

export interface PidfdOps {
  /**
   * A pidfd for `pid` (PIDFD_NONBLOCK unless `nonBlocking` is false: that flag needs
   * Linux 5.10, and a pidfd used only to send a signal does not need it); throws ESRCH
   * if it is gone.
   */
  open(pid: number, nonBlocking?: boolean): number;
  /** Sends `signal` (a number) through the pidfd: 0 or -errno (-ESRCH once it exited). */
  signal(pidfd: number, signal: number): number;
}

let cached: PidfdOps | undefined;

export function pidfdOps(): PidfdOps {
  if (cached) return cached;
  const { koffi, lib } = ffi();
  const syscall = lib.func('long syscall(long nr, ...)');
  return (cached = {
    open(pid, nonBlocking = true) {
      const fd = Number(syscall(NR_PIDFD_OPEN, 'int', pid, 'unsigned int', nonBlocking ? PIDFD_NONBLOCK : 0));
      if (fd < 0) throw osError('pidfd_open', koffi.errno());
      return fd;
    },
    signal(pidfd, signal) {
      const r = Number(syscall(NR_PIDFD_SEND_SIGNAL, 'int', pidfd, 'int', signal, 'void *', null, 'unsigned int', 0));
      return r === 0 ? 0 : -koffi.errno();
    },
  });
}
