import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, posix } from 'node:path';
import { errors } from '../errors/catalogue.js';

/** One --map: a host directory seen in the container at `guest`. */
export interface VolumeMapping {
  /** The host directory, absolute and with symlinks resolved. */
  host: string;
  /** The container path, absolute and normalised. */
  guest: string;
  readOnly: boolean;
}

const HINT = 'Use --map HOST:GUEST[:ro|rw] with absolute paths, for example --map "$PWD:/work" or --map /srv/html:/www:ro';

/** Volumes one VM may have (the guest's FUSE relay has as many slots). */
export const MAX_VOLUMES = 64;

/** Paths the container needs for itself: a volume may not cover them. */
const RESERVED = ['/proc', '/sys', '/dev'];
const RESERVED_FILES = ['/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];

/** What the host directory check needs; a real stat by default. */
export type DirCheck = (path: string) => { ok: true; real: string } | { ok: false; why: string };

/** Why a host path that exists is refused: volumes are directories (FUSE mounts in the guest). */
export const NOT_A_DIRECTORY = 'it is not a directory';

export const statDir: DirCheck = (path) => {
  try {
    if (!statSync(path).isDirectory()) return { ok: false, why: NOT_A_DIRECTORY };
    return { ok: true, real: realpathSync(path) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, why: code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'it is not accessible' : `it cannot be read (${code})` };
  }
};

/** One volume as a flag gave it, before the checks: --map, podman's -v/--volume or --mount. */
export interface VolumeSpec {
  /** The flag it came from, named in errors. */
  flag: string;
  /** The text the user wrote, quoted in errors. */
  spec: string;
  host: string;
  guest: string;
  readOnly: boolean;
  /** The syntax to show in hints for this flag. */
  hint?: string;
}

/** Parses --map values (each comma-separated, the flag repeatable) into specs. Pure. */
export function mapSpecs(values: readonly string[]): VolumeSpec[] {
  const out: VolumeSpec[] = [];
  for (const spec of values.flatMap((v) => v.split(',')).map((s) => s.trim())) {
    if (!spec) continue;
    const parts = spec.split(':');
    if (parts.length < 2 || parts.length > 3) throw errors.invalidOption('--map', spec, 'expected HOST:GUEST or HOST:GUEST:ro', HINT);
    const [host, guest, option] = parts as [string, string, string | undefined];
    if (option !== undefined && option !== 'ro' && option !== 'rw') throw errors.invalidOption('--map', spec, `unknown option "${option}" (only ro or rw)`, HINT);
    out.push({ flag: '--map', spec, host, guest, readOnly: option === 'ro' });
  }
  return out;
}

/** Checks volume specs from every volume flag together (paths, reserved places, duplicates, the limit). */
export function checkVolumes(specs: readonly VolumeSpec[], check: DirCheck = statDir): VolumeMapping[] {
  const out: VolumeMapping[] = [];
  for (const { flag, spec, host, guest: guestRaw, readOnly, hint = HINT } of specs) {
    if (!host || !isAbsolute(host)) throw errors.invalidOption(flag, spec, `host path "${host}" is not absolute`, hint);
    if (!guestRaw || !guestRaw.startsWith('/')) throw errors.invalidOption(flag, spec, `container path "${guestRaw}" is not absolute`, hint);
    if (host.includes('\0') || guestRaw.includes('\0')) throw errors.invalidOption(flag, spec, 'a path has a NUL byte', hint);
    const guest = posix.normalize(guestRaw).replace(/(.)\/+$/, '$1');
    if (guest === '/') throw errors.invalidOption(flag, spec, 'a volume cannot cover the container\'s root "/"', hint);
    const reserved = RESERVED.find((r) => guest === r || guest.startsWith(`${r}/`)) ?? RESERVED_FILES.find((r) => guest === r);
    if (reserved) throw errors.invalidOption(flag, spec, `${guest} is over ${reserved}, which the container needs`, 'Map the directory somewhere else, for example under /mnt');
    const dup = out.find((o) => o.guest === guest);
    if (dup) throw errors.invalidOption(flag, spec, `container path ${guest} is mapped twice`, 'Give each container path one volume');
    const dir = check(host);
    if (!dir.ok) {
      const fix = dir.why === NOT_A_DIRECTORY
        ? 'A volume is a directory, not a single file: map the directory that holds the file elsewhere (for example to /mnt/conf) and point the program there, or copy the file in with fcvm cp'
        : 'Create the directory first, or correct the path';
      throw errors.invalidOption(flag, spec, `host path ${host}: ${dir.why}`, fix);
    }
    out.push({ host: dir.real, guest, readOnly });
  }
  if (out.length > MAX_VOLUMES) {
    throw errors.invalidOption(specs[MAX_VOLUMES]!.flag, specs[MAX_VOLUMES]!.spec, `${out.length} volumes; the limit is ${MAX_VOLUMES}`, 'Map a common parent directory instead');
  }
  return out;
}

/** Parses and checks --map values (each comma-separated, the flag repeatable). Checks host directories with `check`. */
export function parseVolumes(values: readonly string[], check: DirCheck = statDir): VolumeMapping[] {
  return checkVolumes(mapSpecs(values), check);
}
