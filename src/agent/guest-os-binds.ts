import { mkdirSync, readFileSync } from 'node:fs';
import type { MountOps } from '../os/mount.js';

/** Whether the guest booted with the nested kernel profile (`fcvm.profile=nested`). */
export function nestedProfile(cmdline = readCmdline()): boolean {
  return ` ${cmdline.trim()} `.includes(' fcvm.profile=nested ');
}

function readCmdline(): string {
  try {
    return readFileSync('/proc/cmdline', 'utf8');
  } catch {
    return '';
  }
}

/**
 * In a nested-profile guest, a volume also appears at its path in the guest OS (a bind
 * mount of its FUSE mount), so an inner fcvm run with `fcvm exec --vm` finds fcvm, its
 * artifacts and its runtime where the user mapped them. The container binds it as usual.
 */
export function bindIntoGuestOs(ops: MountOps, mountPoint: string, guestPath: string): void {
  mkdirSync(guestPath, { recursive: true });
  try {
    ops.bind(mountPoint, guestPath);
  } catch (e) {
    throw new Error(`cannot bind ${mountPoint} at ${guestPath} in the guest OS: ${(e as Error).message}`);
  }
}
