import { resolve } from 'node:path';
import { errors } from '../errors/catalogue.js';
import type { VolumeSpec } from './volumes.js';

/*
 * podman's spellings of a host directory in the container, -v/--volume and --mount
 * type=bind, turned into the specs that --map gives, so that one engine (FUSE volumes)
 * and one set of checks serve all three.
 */

const V_HINT = 'Use -v HOST-DIR:CONTAINER-DIR[:ro], for example -v "$PWD:/work" or -v /srv/data:/data:ro';
const M_HINT = 'Use --mount type=bind,source=HOST-DIR,target=CONTAINER-DIR[,readonly]';

/** Options podman takes that change nothing here: no SELinux in the guest; the volume is recursive. */
const NO_OPS = new Set(['z', 'Z', 'rbind']);

/** A host path as podman reads it: absolute, or relative to the current directory when it starts with ".". */
function hostPath(v: string, cwd: string): string | undefined {
  if (v.startsWith('/')) return v;
  if (v === '.' || v === '..' || v.startsWith('./') || v.startsWith('../')) return resolve(cwd, v);
  return undefined;
}

/** One -v/--volume value: HOST-DIR:CONTAINER-DIR[:OPTIONS], options comma-separated. Pure apart from `cwd`. */
export function volumeFlagSpec(value: string, cwd: string = process.cwd()): VolumeSpec {
  const flag = '--volume';
  const parts = value.split(':');
  if (parts.length === 1) {
    throw errors.invalidOption(flag, value, 'an anonymous volume (a container path alone) is not supported', 'Map a host directory: -v HOST-DIR:CONTAINER-DIR');
  }
  if (parts.length > 3) throw errors.invalidOption(flag, value, 'expected HOST-DIR:CONTAINER-DIR[:OPTIONS]', V_HINT);
  const [src, guest, opts] = parts as [string, string, string | undefined];
  const host = hostPath(src, cwd);
  if (host === undefined) {
    throw errors.invalidOption(flag, value, src ? `"${src}" would be a named volume, and fcvm has none` : 'the host directory is empty', 'Give a host directory, absolute or starting with "./": -v ./data:/data');
  }
  let readOnly: boolean | undefined;
  for (const o of (opts ?? '').split(',').filter((x) => x !== '')) {
    if (o === 'ro' || o === 'rw') {
      if (readOnly !== undefined && readOnly !== (o === 'ro')) throw errors.invalidOption(flag, value, 'both ro and rw', V_HINT);
      readOnly = o === 'ro';
    } else if (!NO_OPS.has(o)) {
      throw errors.invalidOption(flag, value, `option "${o}" is not supported (only ro, rw, and z, Z, rbind, which change nothing here)`, V_HINT);
    }
  }
  return { flag, spec: value, host, guest, readOnly: readOnly ?? false, hint: V_HINT };
}

/** "true"/"false" or nothing (true), for --mount's switches. */
function mountBool(value: string, key: string, v: string | undefined): boolean {
  if (v === undefined || v === 'true') return true;
  if (v === 'false') return false;
  throw errors.invalidOption('--mount', value, `${key}=${v} is not true or false`, M_HINT);
}

/** One --mount value: type=bind with source and target, optionally readonly. Pure apart from `cwd`. */
export function mountFlagSpec(value: string, cwd: string = process.cwd()): VolumeSpec {
  const flag = '--mount';
  let type: string | undefined;
  let src: string | undefined;
  let dst: string | undefined;
  let readOnly = false;
  for (const field of value.split(',')) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    const key = eq < 0 ? field : field.slice(0, eq);
    const v = eq < 0 ? undefined : field.slice(eq + 1);
    switch (key) {
      case 'type': type = v; break;
      case 'source': case 'src': src = v; break;
      case 'target': case 'destination': case 'dst': dst = v; break;
      case 'readonly': case 'ro': readOnly = mountBool(value, key, v); break;
      case 'rw': readOnly = !mountBool(value, key, v); break;
      case 'relabel': break; // SELinux: the guest has none
      default: throw errors.invalidOption(flag, value, `"${key}" is not supported (only type=bind, source, target, readonly)`, M_HINT);
    }
  }
  if (type === undefined) throw errors.invalidOption(flag, value, 'no type= given', M_HINT);
  if (type !== 'bind') {
    const hint = type === 'tmpfs' ? `Use --tmpfs ${dst ?? 'PATH'}, which makes the same tmpfs` : M_HINT;
    throw errors.invalidOption(flag, value, `type=${type} is not supported; fcvm maps host directories (type=bind)`, hint);
  }
  if (!src) throw errors.invalidOption(flag, value, 'no source= given', M_HINT);
  if (!dst) throw errors.invalidOption(flag, value, 'no target= given', M_HINT);
  const host = hostPath(src, cwd);
  if (host === undefined) throw errors.invalidOption(flag, value, `source "${src}" is not a host directory (absolute, or starting with "./")`, M_HINT);
  return { flag, spec: value, host, guest: dst, readOnly, hint: M_HINT };
}
