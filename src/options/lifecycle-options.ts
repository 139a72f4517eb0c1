import { constants as osConstants } from 'node:os';
import { errors } from '../errors/catalogue.js';
import { SIGNAL_NAME } from '../protocol/api.js';
import type { VmRef } from '../lifecycle/find.js';
import { parseGoDuration } from './health-flags.js';
import { parsePid, validateName } from './parse.js';

export interface StopFlags {
  pid?: string;
  time?: string;
  all?: boolean;
}

export interface StopOptions {
  /** The VMs to stop; `all` means every running one. */
  refs: VmRef[] | 'all';
  graceSeconds: number | undefined;
}

const STOP_USAGE = 'Usage: fcvm stop NAME... | --pid PID | --all [-t SECONDS]';

/** Flags to options for `fcvm stop`. Pure. */
export function stopOptionsFromFlags(names: readonly string[], flags: StopFlags): StopOptions {
  const given = [names.length > 0, flags.pid !== undefined, flags.all === true].filter(Boolean).length;
  if (given !== 1) throw errors.usage(given === 0 ? 'no VM given' : 'give VM names, --pid or --all, only one of them', STOP_USAGE);
  const graceSeconds = parseGrace(flags.time);
  const refs: StopOptions['refs'] = flags.all ? 'all'
    : flags.pid !== undefined ? [{ pid: parsePid(flags.pid, 'Give the PID shown by "fcvm ls"') }]
    : names.map((n) => ({ name: validateName(n) }));
  return { refs, graceSeconds };
}

function parseGrace(time: string | undefined): number | undefined {
  if (time === undefined) return undefined;
  const graceSeconds = Number(time);
  if (!/^\d+(\.\d+)?$/.test(time.trim()) || graceSeconds > 3600) {
    throw errors.invalidOption('--time', time, 'not a number of seconds from 0 to 3600', 'Give the grace period before SIGKILL, for example -t 5 (-t 0 kills at once)');
  }
  return graceSeconds;
}

export interface RemoveOptions {
  names: string[];
  /** Stop a running VM first (as podman rm --force). */
  force: boolean;
  /** A name with nothing to remove is not an error (podman rm --ignore). */
  ignore: boolean;
  /** With force: the grace period before SIGKILL (default: the VM's --stop-timeout). */
  graceSeconds: number | undefined;
  /** Every VM, ended and running (podman rm --all): a running one only with force. */
  all: boolean;
}

export interface RemoveFlags {
  force?: boolean;
  ignore?: boolean;
  time?: string;
  all?: boolean;
}

/** Flags to options for `fcvm rm`. Pure. */
export function removeOptionsFromFlags(names: readonly string[], flags: RemoveFlags): RemoveOptions {
  const usage = 'Usage: fcvm rm [--force [-t SECONDS]] [--ignore] NAME... | --all';
  if (flags.time !== undefined && !flags.force) throw errors.usage('--time applies only with --force', usage);
  if (flags.all && names.length > 0) throw errors.usage('give VM names or --all, not both', usage);
  if (!flags.all && names.length === 0) throw errors.usage('no VM named to remove', usage);
  return { names: [...new Set(names.map((n) => validateName(n)))], force: flags.force ?? false, ignore: flags.ignore ?? false, graceSeconds: parseGrace(flags.time), all: flags.all ?? false };
}

export interface LogsFlags {
  follow?: boolean;
  tail?: string;
  since?: string;
  until?: string;
  timestamps?: boolean;
  names?: boolean;
}

export interface LogsOptions {
  names: string[];
  follow: boolean;
  tail: number | undefined;
  since?: number;
  until?: number;
  timestamps: boolean;
}

/** Flags to options for `fcvm logs`; `now` is the time --since 10m counts back from. Pure. */
export function logsOptionsFromFlags(names: string[], flags: LogsFlags, now = Date.now()): LogsOptions {
  let tail: number | undefined;
  // podman takes -1 for "all" too.
  if (flags.tail !== undefined && flags.tail !== 'all' && flags.tail !== '-1') {
    if (!/^\d+$/.test(flags.tail)) throw errors.invalidOption('--tail', flags.tail, 'not a number of lines', 'Give a whole number, for example --tail 20, or --tail all');
    tail = Number(flags.tail);
  }
  return {
    names: names.map((n) => validateName(n)),
    follow: flags.follow ?? false,
    tail,
    ...(flags.since !== undefined ? { since: parseLogTime('--since', flags.since, now) } : {}),
    ...(flags.until !== undefined ? { until: parseLogTime('--until', flags.until, now) } : {}),
    timestamps: flags.timestamps ?? false,
  };
}

/**
 * A time as podman logs --since and --until take it, in ms since the epoch: a duration
 * back from now (10m, 1h30m), a Unix time in seconds (1700000000.5), or a date with an
 * optional time (2026-12-07, 2026-12-07T09:30:00, 2026-12-07T09:30:00Z, ...+01:00),
 * in the host's zone when it names none. Pure.
 */
export function parseLogTime(flag: string, value: string, now: number): number {
  const v = value.trim();
  const bad = () => errors.invalidOption(flag, value, 'not a time', `Give a duration back from now (${flag} 10m), a Unix time (${flag} 1700000000), or a date and time (${flag} 2026-12-07T09:30:00Z)`);
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) return now - parseGoDuration(flag, v);
  const m = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?))?(Z|[+-]\d\d:\d\d)?$/.exec(v);
  if (!m) throw bad();
  const frac = m[2]?.match(/\.(\d+)$/)?.[1];
  const clock = (m[2] ?? '00:00:00').replace(/\.\d+$/, '').padEnd(8, ':00');
  const ms = Date.parse(`${m[1]}T${clock}${m[3] ?? ''}`);
  if (Number.isNaN(ms)) throw bad();
  return ms + (frac ? Number(`0.${frac}`) * 1000 : 0);
}

/**
 * A signal as podman kill takes it: a name with or without SIG, any case (KILL,
 * sigusr1), or a number. Returns its name (SIGKILL). Pure.
 */
export function parseSignal(value: string): string {
  const names = osConstants.signals as Record<string, number>;
  const v = value.trim();
  const name = /^\d+$/.test(v) ? Object.keys(names).find((n) => names[n] === Number(v)) : `SIG${v.toUpperCase().replace(/^SIG/, '')}`;
  if (!name || !(name in names) || !SIGNAL_NAME.test(name)) {
    throw errors.invalidOption('--signal', value, 'not a signal', 'Give a name or number, for example -s TERM, -s SIGUSR1 or -s 9');
  }
  return name;
}
