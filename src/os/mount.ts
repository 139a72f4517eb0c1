/**
 * mount(2) for bind mounts, which Node lacks: a nested-profile guest's agent shows a
 * volume's FUSE mount at a second path, in the guest OS.
 */
import { ffi, osError } from './ffi.js';

const MS_BIND = 0x1000;

export interface MountOps {
  /** Makes the mount at `source` visible at `target` too (an existing directory); throws with the errno's name. */
  bind(source: string, target: string): void;
}

let cached: MountOps | undefined;

export function mountOps(): MountOps {
  if (cached) return cached;
  const { koffi, lib } = ffi();
  const mount = lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)');
  return (cached = {
    bind(source, target) {
      if ((mount(source, target, null, MS_BIND, null) as number) !== 0) throw osError(`mount(${source}, ${target}, MS_BIND)`, koffi.errno());
    },
  });
}
