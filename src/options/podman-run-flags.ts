import { errors } from '../errors/catalogue.js';
import type { CertFile, PullAuth } from '../protocol/api.js';
import { parseChoice } from './parse.js';
import { authFromCreds, authFromFile, registryOf } from './registry-auth.js';
import { podmanPassthroughWords } from './podman-passthrough.js';

/** podman's own `run` flags that fcvm takes, as commander hands them over. */
export interface PodmanRunFlags {
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  rm?: boolean;
  workdir?: string;
  user?: string;
  entrypoint?: string;
  hostname?: string;
  label?: string[];
  labelFile?: string[];
  envFile?: string[];
  init?: boolean;
  pull?: string;
  tlsVerify?: string | boolean;
  certDir?: string;
  creds?: string;
  authfile?: string;
  volume?: string[];
  mount?: string[];
}

/** What the run flags' files held, read by `readRunFiles` before the pure parsing. */
export interface RunFiles {
  envFiles?: { path: string; text: string }[];
  labelFiles?: { path: string; text: string }[];
  /** The host's time zone (its /etc/localtime's name), for --tz local. */
  hostZone?: string;
  authfile?: { path: string; text: string };
  /** podman's own auth files that exist (see defaultAuthFiles), used without --creds or --authfile. */
  defaultAuthFiles?: { path: string; text: string }[];
  certDir?: { path: string; files: CertFile[] };
}

export type PullPolicy = 'always' | 'missing' | 'never';

/** How a remote image is pulled in the guest. The secrets in it are never written anywhere. */
export interface PullOptions {
  policy: PullPolicy;
  tlsVerify: boolean;
  certDir?: string;
  certs?: CertFile[];
  auth?: PullAuth;
  /** Where the credentials came from, for `inspect` (never the credentials themselves). */
  authFrom?: 'creds' | 'authfile';
}

/** The container-facing run options that podman's flags give. */
export interface PodmanRunExtras {
  interactive: boolean;
  tty: boolean;
  detach: boolean;
  rm: boolean;
  workdir: string | undefined;
  user: string | undefined;
  entrypoint: string | undefined;
  hostname: string | undefined;
  labels: Record<string, string>;
  init: boolean;
  /** More of podman's run flags, one checked word each, for the guest's podman (options/podman-passthrough.ts). */
  podmanOptions: string[];
  /** From --env-file, in order; --env overrides them, as in podman. */
  envFromFiles: Record<string, string>;
  pull: PullOptions;
}

const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * podman's --env-file format: KEY=VALUE per line, taken verbatim (no quotes removed);
 * blank lines and lines starting with # are skipped; a bare KEY takes fcvm's own $KEY,
 * and is skipped when that is unset. Pure.
 */
export function parseEnvFile(text: string, path: string, hostEnv: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^[ \t]+/, '');
    if (!line || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line.trimEnd() : line.slice(0, eq);
    if (!ENV_KEY_RE.test(key)) {
      throw errors.invalidOption('--env-file', path, `line ${i + 1}: "${key.slice(0, 40)}" is not a valid variable name`, 'Write one KEY=VALUE per line; # starts a comment');
    }
    if (eq >= 0) env[key] = line.slice(eq + 1);
    else if (hostEnv[key] !== undefined) env[key] = hostEnv[key]!;
  });
  return env;
}

/** podman's --label-file: a KEY=VALUE per line; blank lines and # comments skipped. Pure. */
export function labelFileLines(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

/**
 * The pass-through flags as the guest's podman must see them: `--tz local` is the host's
 * zone (the guest's own is UTC), and --no-hosts refuses --add-host, as podman does. Pure.
 */
function hostsAndZone(flags: PodmanRunFlags, files: RunFiles): object {
  const f = flags as PodmanRunFlags & { tz?: string; hosts?: boolean | string; noHosts?: boolean | string; addHost?: string[] };
  // commander's --no-hosts is `hosts: false` (or the string of --no-hosts=VALUE).
  const noHosts = f.hosts === false || f.hosts === 'true' || f.noHosts === true || f.noHosts === 'true';
  if (noHosts && f.addHost?.length) {
    throw errors.usage('--no-hosts and --add-host were both given: with --no-hosts the container\'s /etc/hosts is its image\'s', 'Leave out one of them');
  }
  return f.tz === 'local' ? { ...f, tz: files.hostZone ?? 'UTC' } : f;
}

/** --label KEY=VALUE (or a bare KEY, with an empty value), repeatable. Pure. */
export function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  const hint = 'Use --label KEY=VALUE (repeatable), for example --label team=a';
  if (values.length > 64) throw errors.invalidOption('--label', values[64]!, 'more than 64 labels', hint);
  for (const v of values) {
    const eq = v.indexOf('=');
    const key = eq < 0 ? v : v.slice(0, eq);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.\/-]{0,254}$/.test(key)) throw errors.invalidOption('--label', v, key ? `"${key}" is not a label key (letters, digits, . _ / -)` : 'the key is empty', hint);
    const value = eq < 0 ? '' : v.slice(eq + 1);
    if (value.length > 4096 || /[\0\n]/.test(value)) throw errors.invalidOption('--label', v, 'the value is too long or has a newline', hint);
    labels[key] = value;
  }
  return labels;
}

function parseWorkdir(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!v.startsWith('/') || v.includes('\0') || v.length > 4096) {
    throw errors.invalidOption('--workdir', v, 'not an absolute path', 'Give the directory as the container sees it, for example -w /data');
  }
  return v;
}

function parseUser(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?$/.test(v)) {
    throw errors.invalidOption('--user', v, 'not USER[:GROUP]', 'Give a name or ID, with an optional group: -u 1000:1000 or -u nobody');
  }
  return v;
}

function parseHostname(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/.test(v)) {
    throw errors.invalidOption('--hostname', v, 'not a host name (1-63 letters, digits, "." and "-", starting with a letter or digit)', 'For example --hostname web-1');
  }
  return v;
}

/** --tls-verify, --tls-verify=true or --tls-verify=false. */
export function parseTlsVerify(v: string | boolean | undefined): boolean {
  if (v === undefined || v === true || v === 'true') return true;
  if (v === 'false') return false;
  throw errors.invalidOption('--tls-verify', String(v), 'not true or false', 'Write --tls-verify=false (with "=") for a plain-HTTP registry or one whose certificate is not checked');
}

/** Pull policy and the registry's TLS material and credentials for `image`. Pure. */
export function pullOptions(image: string, flags: PodmanRunFlags, files: RunFiles): PullOptions {
  const policyValue = flags.pull ?? 'missing';
  if (policyValue === 'newer') {
    throw errors.invalidOption('--pull', 'newer', 'a VM starts with no images, so there is nothing to compare with', 'Use --pull always (a fresh pull in the guest) or --pull missing');
  }
  const policy = parseChoice('--pull', policyValue, ['always', 'missing', 'never'] as const);
  const out: PullOptions = { policy, tlsVerify: parseTlsVerify(flags.tlsVerify) };
  if (files.certDir) {
    out.certDir = files.certDir.path;
    out.certs = files.certDir.files;
  }
  if (flags.creds !== undefined && flags.authfile !== undefined) {
    throw errors.usage('both --creds and --authfile were given', 'Use one of them');
  }
  if (flags.creds !== undefined) {
    out.auth = authFromCreds(image, flags.creds);
    out.authFrom = 'creds';
  } else if (files.authfile) {
    const auth = authFromFile(image, files.authfile.text, files.authfile.path);
    if (!auth) {
      throw errors.invalidOption('--authfile', files.authfile.path, `it has no credentials for registry "${registryOf(image)}"`,
        `Add them with "podman login --authfile ${files.authfile.path} ${registryOf(image)}", or check the image name`);
    }
    out.auth = auth;
    out.authFrom = 'authfile';
  } else {
    // Like podman: credentials from "podman login" apply without being named.
    for (const f of files.defaultAuthFiles ?? []) {
      let auth: PullAuth | undefined;
      try {
        auth = authFromFile(image, f.text, f.path);
      } catch {
        continue; // a file the user did not name is no reason to fail
      }
      if (auth) {
        out.auth = auth;
        out.authFrom = 'authfile';
        break;
      }
    }
  }
  return out;
}

/** podman's run flags as fcvm options. Pure. */
export function podmanRunExtras(image: string, flags: PodmanRunFlags, files: RunFiles, hostEnv: NodeJS.ProcessEnv): PodmanRunExtras {
  const envFromFiles: Record<string, string> = {};
  for (const f of files.envFiles ?? []) Object.assign(envFromFiles, parseEnvFile(f.text, f.path, hostEnv));
  if (flags.entrypoint !== undefined && (flags.entrypoint.length > 4096 || flags.entrypoint.includes('\0'))) {
    throw errors.invalidOption('--entrypoint', flags.entrypoint, 'too long', 'Give a command, or a JSON array such as --entrypoint \'["/bin/sh","-c"]\'');
  }
  return {
    interactive: flags.interactive ?? false,
    tty: flags.tty ?? false,
    detach: flags.detach ?? false,
    rm: flags.rm ?? false,
    workdir: parseWorkdir(flags.workdir),
    user: parseUser(flags.user),
    entrypoint: flags.entrypoint,
    hostname: parseHostname(flags.hostname),
    // As podman: the files' labels first, --label over them.
    labels: parseLabels([...(files.labelFiles ?? []).flatMap((f) => labelFileLines(f.text)), ...(flags.label ?? [])]),
    init: flags.init ?? false,
    podmanOptions: podmanPassthroughWords(hostsAndZone(flags, files)),
    envFromFiles,
    pull: pullOptions(image, flags, files),
  };
}
