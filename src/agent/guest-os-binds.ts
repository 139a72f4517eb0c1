import { mkdirSync, readFileSync } from 'node:fs';
import type { MountCalls } from '../os/fs-calls.js';

const MS_BIND = 0x1000;

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
export function bindIntoGuestOs(calls: MountCalls, mountPoint: string, guestPath: string): void {
  mkdirSync(guestPath, { recursive: true });
  if (calls.mount(mountPoint, guestPath, '', MS_BIND, '') !== 0) throw new Error(`cannot bind ${mountPoint} at ${guestPath} in the guest OS`);
}
