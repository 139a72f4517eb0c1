import { errors } from './catalogue.js';
import { FcvmError } from './fcvm-error.js';

/** The errno-like code of `e` or of anything in its cause chain, also read from a tool's message. */
function faultCode(e: unknown): 'ENOSPC' | 'EROFS' | undefined {
  // fcvm's own errors are already precise, except those that wrap a host tool or call;
  // a guest's console ("No space left" inside the VM) is not the host's disk.
  if (e instanceof FcvmError && !['COMMAND_FAILED', 'SETUP_FAILED', 'VMM_FAILED', 'INTERNAL'].includes(e.code)) return undefined;
  for (let c = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return 'ENOSPC';
    if (code === 'EROFS') return 'EROFS';
    // Tools (apt-get, qemu-img, cp, podman) report it in their own words.
    if (/No space left on device|Disk quota exceeded/i.test(c.message)) return 'ENOSPC';
    if (/Read-only file system/i.test(c.message)) return 'EROFS';
  }
  return undefined;
}

/**
 * A machine fault (a full or read-only filesystem) behind `e`, as the one-line error
 * that says so; undefined when `e` is something else. `doing` says what fcvm was at,
 * `where` which directory it was writing.
 */
export function machineFault(e: unknown, doing: string, where: string): FcvmError | undefined {
  const code = faultCode(e);
  if (code === 'ENOSPC') return errors.diskFull(doing, where, e);
  if (code === 'EROFS') return errors.readOnly(doing, where, e);
  return undefined;
}

/**
 * A file of the base directory this user may not touch (one of root's, named by an
 * FCVM_BASE_DIR inherited through su or runuser, say), as the one-line error that says
 * so; undefined when `e` is something else.
 */
export function baseDirFault(e: unknown, baseDir: string): FcvmError | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || (err.code !== 'EACCES' && err.code !== 'EPERM') || typeof err.path !== 'string') return undefined;
  const inside = err.path === baseDir || err.path.startsWith(baseDir.endsWith('/') ? baseDir : `${baseDir}/`);
  return inside ? errors.baseDirDenied(baseDir, err.path, e) : undefined;
}
