import { Option } from 'commander';
import { isIP } from 'node:net';
import { errors } from '../errors/catalogue.js';

/**
 * podman run flags that the guest's podman takes as they are: fcvm checks each value
 * here, on the host, and hands the flag over as one word (`--cap-drop=ALL`), so no value
 * can pass for a flag of its own. Their effect is inside the VM, on the container.
 */
export interface PassthroughFlag {
  /** Commander's flag spec, as podman spells the flag. */
  spec: string;
  help: string;
  /** A switch (podman's --read-only or --read-only=false), or a value checked by `valid`. */
  valid?: RegExp;
  /** What a good value looks like, for the error's hint. */
  example?: string;
  /** Given more than once, each counts (otherwise the last one does). */
  repeat?: boolean;
  /** A check beyond `valid`'s shape (an address that parses). */
  check?: (value: string) => boolean;
}

const CAP = /^(ALL|(CAP_)?[A-Za-z_]{2,32})$/;
/** A host name or domain: labels of letters, digits and hyphens (and _ , which /etc/hosts allows). */
const DOMAIN = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/;

export const PODMAN_RUN_PASSTHROUGH: readonly PassthroughFlag[] = [
  { spec: '--read-only [bool]', help: 'the container\'s root file system is read-only (/tmp, /run, /var/tmp stay writable tmpfs)' },
  { spec: '--read-only-tmpfs [bool]', help: 'with --read-only: tmpfs on /tmp, /run and /var/tmp (default true)' },
  { spec: '--tmpfs <path[:options]>', help: 'a tmpfs in the container (repeatable), e.g. --tmpfs /scratch:size=64m,mode=1777',
    valid: /^\/[^\0:,\s]*(:[A-Za-z0-9=,._-]+)?$/, example: '--tmpfs /scratch:size=64m', repeat: true },
  { spec: '--cap-add <cap>', help: 'add a capability (repeatable)', valid: CAP, example: '--cap-add NET_ADMIN', repeat: true },
  { spec: '--cap-drop <cap>', help: 'drop a capability, or ALL (repeatable)', valid: CAP, example: '--cap-drop ALL', repeat: true },
  { spec: '--security-opt <opt>', help: 'no-new-privileges, seccomp=unconfined, apparmor=unconfined, label=disable, mask=PATHS, unmask=PATHS (repeatable)',
    valid: /^(no-new-privileges(=(true|false))?|seccomp=unconfined|apparmor=unconfined|label=disable|(un)?mask=(ALL|\/[^\0\s]*))$/, example: '--security-opt no-new-privileges', repeat: true },
  { spec: '--sysctl <name=value>', help: 'a namespaced sysctl of the container (repeatable), e.g. kernel.msgmax=65536',
    valid: /^[a-z0-9_]+(\.[a-z0-9_*-]+)+=[^\0\n]{0,256}$/, example: '--sysctl kernel.msgmax=65536', repeat: true },
  { spec: '--ulimit <name=soft[:hard]>', help: 'a resource limit (repeatable), e.g. nofile=1024:2048',
    valid: /^[a-z]{2,12}=(-1|\d{1,19})(:(-1|\d{1,19}))?$/, example: '--ulimit nofile=1024:2048', repeat: true },
  { spec: '--group-add <group>', help: 'a supplementary group, by name or ID (repeatable)',
    valid: /^([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})$/, example: '--group-add 1000', repeat: true },
  { spec: '--shm-size <size>', help: 'size of /dev/shm, e.g. 64m', valid: /^\d{1,12}[bkmgBKMG]?$/, example: '--shm-size 64m' },
  { spec: '--umask <mask>', help: 'the container\'s umask, e.g. 0027', valid: /^0?[0-7]{3}$/, example: '--umask 0027' },
  { spec: '--stop-signal <signal>', help: 'the signal that stops the container (fcvm stop, SIGTERM to fcvm), before SIGKILL after --stop-timeout',
    valid: /^((SIG)?[A-Za-z][A-Za-z0-9+-]{1,10}|\d{1,2})$/, example: '--stop-signal SIGQUIT' },
  { spec: '--unsetenv <name>', help: 'unset a variable that the image or podman sets (repeatable)',
    valid: /^[A-Za-z_][A-Za-z0-9_]*$/, example: '--unsetenv container', repeat: true },
  { spec: '--unsetenv-all [bool]', help: 'unset every variable the image and podman set' },
  { spec: '--add-host <host:ip>', help: 'a line of the container\'s /etc/hosts (repeatable; names joined by ;), e.g. db.lan:10.0.0.5',
    valid: /^[^:;\s]+(;[^:;\s]+)*:.+$/, check: (v) => addHostOk(v), example: '--add-host db.lan:10.0.0.5', repeat: true },
  { spec: '--no-hosts [bool]', help: 'the container keeps its image\'s /etc/hosts: neither podman nor fcvm writes one' },
  { spec: '--dns <ip>', help: 'a name server for the container instead of the guest\'s (repeatable)',
    valid: /^[0-9A-Fa-f:.]{2,45}$/, check: (v) => isIP(v) !== 0, example: '--dns 10.0.0.53', repeat: true },
  { spec: '--dns-search <domain>', help: 'a search domain for the container (repeatable; . for none)',
    valid: /^(\.|[A-Za-z0-9_][A-Za-z0-9_.-]{0,252})$/, check: (v) => v === '.' || DOMAIN.test(v), example: '--dns-search corp.lan', repeat: true },
  { spec: '--dns-option <opt>', help: 'a resolver option for the container (repeatable), e.g. ndots:2',
    valid: /^[a-z][a-z0-9-]{0,31}(:\d{1,5})?$/, example: '--dns-option ndots:2', repeat: true },
  { spec: '--tz <zone>', help: 'the container\'s time zone: a name from the tz database (Europe/Paris), or local for the host\'s',
    valid: /^[A-Za-z][A-Za-z0-9_+-]{0,31}(\/[A-Za-z0-9_+-]{1,32}){0,2}$/, example: '--tz Europe/Paris' },
  { spec: '--timeout <seconds>', help: 'kill the container after this many seconds (it exits 255, as in podman)',
    valid: /^\d{1,9}$/, example: '--timeout 600' },
];

/** podman's --add-host NAME[;NAME...]:IP, the address after the first colon (an IPv6 one has more). Pure. */
function addHostOk(v: string): boolean {
  const colon = v.indexOf(':');
  return v.slice(0, colon).split(';').every((n) => n.length <= 253 && DOMAIN.test(n)) && isIP(v.slice(colon + 1)) !== 0;
}

/** Commander's attribute for a flag ("--cap-add" -> "capAdd"). */
export const attributeOf = (spec: string) => spec.match(/--([a-z0-9-]+)/)![1]!.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const longOf = (spec: string) => spec.match(/--[a-z0-9-]+/)![0];

/**
 * A flag's value as commander hands it over. `--no-hosts` is commander's negation of a
 * `hosts` switch: true when not given, false for the bare flag, and a string for =VALUE.
 */
function valueOf(flags: object, spec: string): unknown {
  const attr = attributeOf(spec);
  if (!attr.startsWith('no')) return (flags as Record<string, unknown>)[attr];
  const negated = (flags as Record<string, unknown>)[attr[2]!.toLowerCase() + attr.slice(3)];
  if (negated === true || negated === undefined) return (flags as Record<string, unknown>)[attr];
  return negated === false ? true : negated;
}

/** The pass-through flags as commander options: value flags repeat, switches take =true/=false. */
export function passthroughOptions(): Option[] {
  return PODMAN_RUN_PASSTHROUGH.map((f) => {
    const o = new Option(f.spec, f.help);
    return f.repeat ? o.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]) : o;
  });
}

/** The flags given, checked, as one word each for the guest's podman. Pure. */
export function podmanPassthroughWords(flags: object): string[] {
  const out: string[] = [];
  for (const f of PODMAN_RUN_PASSTHROUGH) {
    const long = longOf(f.spec);
    const given = valueOf(flags, f.spec);
    if (given === undefined) continue;
    if (!f.valid) {
      if (given !== true && given !== 'true' && given !== 'false') {
        throw errors.invalidOption(long, String(given), 'not true or false', `Write ${long} or ${long}=false`);
      }
      out.push(given === 'false' ? `${long}=false` : long);
      continue;
    }
    const values = Array.isArray(given) ? given.map(String) : [String(given)];
    if (values.length > 64) throw errors.invalidOption(long, values[64]!, 'given more than 64 times', `For example ${f.example}`);
    for (const v of values) {
      if (!f.valid.test(v) || (f.check && !f.check(v))) throw errors.invalidOption(long, v, 'not a value the guest\'s podman takes', `For example ${f.example}`);
      out.push(`${long}=${v}`);
    }
  }
  return out;
}
