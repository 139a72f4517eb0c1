import { errors } from '../errors/catalogue.js';
import type { PullAuth } from '../protocol/api.js';


/**
 * The registry part of an image reference, as podman reads it: the first component
 * when it has a "." or ":" or is "localhost", else docker.io. Pure.
 */
export function registryOf(ref: string): string {
  const slash = ref.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = ref.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : 'docker.io';
}

/** The repository without tag or digest, with its registry: "reg:5000/team/app". Pure. */
function repositoryOf(ref: string): string {
  const reg = registryOf(ref);
  let rest = ref.startsWith(`${reg}/`) ? ref.slice(reg.length + 1) : ref;
  rest = rest.replace(/@.*$/, '').replace(/:[^/]*$/, '');
  return `${reg}/${rest}`;
}

/** An auth.json key without scheme or trailing slash; Docker's legacy key means docker.io. */
function normalizeKey(key: string): string {
  const k = key.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  return k === 'index.docker.io/v1' || k === 'index.docker.io' || k === 'registry-1.docker.io' ? 'docker.io' : k;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
}

/**
 * The credentials in podman's auth.json (or Docker's config.json) that a pull of `ref`
 * uses: the most specific key first (registry/namespace/repo), then the registry's own.
 * Returns undefined when the file has none for it. Pure.
 */
export function authFromFile(ref: string, text: string, path: string): PullAuth | undefined {
  let file: AuthFile;
  try {
    file = JSON.parse(text) as AuthFile;
  } catch (e) {
    throw errors.invalidOption('--authfile', path, `not JSON (${(e as Error).message})`, 'Give a file in podman\'s auth.json format, as "podman login --authfile FILE REGISTRY" writes it');
  }
  if (typeof file !== 'object' || file === null) throw errors.invalidOption('--authfile', path, 'not an auth.json object', 'Give a file in podman\'s auth.json format');
  const registry = registryOf(ref);
  const entries = new Map(Object.entries(file.auths ?? {}).map(([k, v]) => [normalizeKey(k), v]));
  const parts = repositoryOf(ref).split('/');
  for (let n = parts.length; n >= 1; n--) {
    const entry = entries.get(parts.slice(0, n).join('/'));
    if (entry?.auth) {
      validateAuth(entry.auth, path);
      return { registry: parts.slice(0, n).join('/'), auth: entry.auth };
    }
  }
  if (file.credHelpers?.[registry]) {
    throw errors.invalidOption('--authfile', path, `registry "${registry}" uses the credential helper "${file.credHelpers[registry]}", which fcvm cannot run`, 'Give the credentials with --creds USER:PASS, or an auth.json with an "auth" entry');
  }
  return undefined;
}

function validateAuth(auth: string, path: string): void {
  const decoded = /^[A-Za-z0-9+/]+=*$/.test(auth) ? Buffer.from(auth, 'base64').toString('utf8') : '';
  if (!decoded.includes(':')) {
    throw errors.invalidOption('--authfile', path, 'an "auth" entry is not base64 of USER:PASSWORD', 'Write it with "podman login --authfile FILE REGISTRY"');
  }
}

/** --creds USER:PASS as an auth.json entry for the image's registry. Pure; the value is never echoed. */
export function authFromCreds(ref: string, creds: string): PullAuth {
  const colon = creds.indexOf(':');
  if (colon <= 0) {
    throw errors.invalidOption('--creds', colon === 0 ? '(no user)' : '(no password)', 'expected USER:PASSWORD', 'Give --creds USER:PASSWORD, or --authfile FILE (podman\'s auth.json)');
  }
  return { registry: registryOf(ref), auth: Buffer.from(creds, 'utf8').toString('base64') };
}

/**
 * Where podman itself keeps credentials, in the order it reads them: REGISTRY_AUTH_FILE,
 * the runtime directory's auth.json, then the user's config and Docker's. Pure.
 */
export function defaultAuthFiles(env: NodeJS.ProcessEnv, uid: number, home: string): string[] {
  if (env.REGISTRY_AUTH_FILE) return [env.REGISTRY_AUTH_FILE];
  const primary = env.XDG_RUNTIME_DIR ? `${env.XDG_RUNTIME_DIR}/containers/auth.json` : `/run/containers/${uid}/auth.json`;
  return [primary, `${env.XDG_CONFIG_HOME || `${home}/.config`}/containers/auth.json`, `${home}/.docker/config.json`];
}
