import { errors } from '../errors/catalogue.js';
import type { VmRef } from '../lifecycle/find.js';
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
  let graceSeconds: number | undefined;
  if (flags.time !== undefined) {
    graceSeconds = Number(flags.time);
    if (!/^\d+(\.\d+)?$/.test(flags.time.trim()) || graceSeconds > 3600) {
      throw errors.invalidOption('--time', flags.time, 'not a number of seconds from 0 to 3600', 'Give the grace period before SIGKILL, for example -t 5 (-t 0 kills at once)');
    }
  }
  const refs: StopOptions['refs'] = flags.all ? 'all'
    : flags.pid !== undefined ? [{ pid: parsePid(flags.pid, 'Give the PID shown by "fcvm ls"') }]
    : names.map((n) => ({ name: validateName(n) }));
  return { refs, graceSeconds };
}

export interface LogsFlags {
  follow?: boolean;
  tail?: string;
}

/** Flags to options for `fcvm logs`. Pure. */
export function logsOptionsFromFlags(name: string, flags: LogsFlags): { name: string; follow: boolean; tail: number | undefined } {
  let tail: number | undefined;
  if (flags.tail !== undefined && flags.tail !== 'all') {
    if (!/^\d+$/.test(flags.tail)) throw errors.invalidOption('--tail', flags.tail, 'not a number of lines', 'Give a whole number, for example --tail 20, or --tail all');
    tail = Number(flags.tail);
  }
  return { name: validateName(name), follow: flags.follow ?? false, tail };
}
