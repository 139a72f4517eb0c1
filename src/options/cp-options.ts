import { errors } from '../errors/catalogue.js';
import { validateName } from './parse.js';

export interface CpFlags {
  archive?: boolean;
  overwrite?: boolean;
}

/**
 * `fcvm cp`'s two ends: one is a VM's container (`NAME:PATH`), the other a host path,
 * or "-" for a tar stream on stdin (in) or stdout (out).
 */
export type CpOptions = {
  name: string;
  containerPath: string;
  hostPath: string;
  overwrite: boolean;
} & ({ to: 'container'; archive: boolean } | { to: 'host' });

const USAGE = 'Usage: fcvm cp [--archive=false] [--overwrite] NAME:PATH HOSTPATH|-, or HOSTPATH|- NAME:PATH';

/** podman's reading of an argument: `NAME:PATH` names a container unless it starts with "/" or "." (so "./a:b" is a host path). */
function containerRef(arg: string): { name: string; path: string } | undefined {
  const colon = arg.indexOf(':');
  if (colon < 0 || arg.startsWith('/') || arg.startsWith('.')) return undefined;
  return { name: arg.slice(0, colon), path: arg.slice(colon + 1) };
}

export function cpOptionsFromFlags(src: string, dest: string, flags: CpFlags): CpOptions {
  if (src === '' || dest === '') throw errors.usage('cp: an empty path was given', USAGE);
  const from = containerRef(src);
  const to = containerRef(dest);
  if (from && to) throw errors.usage('cp: copying from one VM to another is not supported', 'Copy to the host first ("fcvm cp A:PATH DIR"), then from there ("fcvm cp DIR/X B:PATH")');
  const ref = from ?? to;
  if (!ref) throw errors.usage(`cp: neither "${src}" nor "${dest}" names a VM`, `${USAGE} (a host path with ":" in it starts with "./" or "/")`);
  const name = validateName(ref.name);
  if (ref.path === '') throw errors.usage(`cp: no path after "${name}:"`, 'Give the path in the container, as NAME:/PATH');
  const overwrite = flags.overwrite ?? false;
  if (from) {
    if (src === '-') throw errors.usage('cp: "-" is a host end', USAGE);
    return { to: 'host', name, containerPath: ref.path, hostPath: dest, overwrite };
  }
  return { to: 'container', name, containerPath: ref.path, hostPath: src, overwrite, archive: flags.archive ?? true };
}
