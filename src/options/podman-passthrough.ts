import { Option } from 'commander';
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
}

const CAP = /^(ALL|(CAP_)?[A-Za-z_]{2,32})$/;

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
];

/** Commander's attribute for a flag ("--cap-add" -> "capAdd"). */
export const attributeOf = (spec: string) => spec.match(/--([a-z0-9-]+)/)![1]!.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const longOf = (spec: string) => spec.match(/--[a-z0-9-]+/)![0];

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
    const given = (flags as Record<string, unknown>)[attributeOf(f.spec)];
    if (given === undefined) continue;
    const long = longOf(f.spec);
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
      if (!f.valid.test(v)) throw errors.invalidOption(long, v, 'not a value the guest\'s podman takes', `For example ${f.example}`);
      out.push(`${long}=${v}`);
    }
  }
  return out;
}
