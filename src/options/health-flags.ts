import { errors } from '../errors/catalogue.js';
import type { HealthOverride } from '../protocol/healthcheck.js';

/** podman's health check flags, as commander hands them over. */
export interface HealthFlags {
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  /** false with --no-healthcheck. */
  healthcheck?: boolean;
}

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("30s", "1m30s", "500ms") in ms; `flag` names it in the error. Pure. */
export function parseGoDuration(flag: string, v: string): number {
  const hint = `Give ${flag} as a duration with its unit, for example ${flag} 30s, 1m30s or 500ms`;
  if (v === '0') return 0;
  const parts = [...v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (v === '' || parts.map((p) => p[0]).join('') !== v) throw errors.invalidOption(flag, v, 'not a duration', hint);
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0);
  return Math.round(ms);
}

/** --health-cmd as podman reads it: a JSON array (CMD form), or a shell command. Pure. */
export function parseHealthCmd(v: string): string[] | 'none' {
  if (v.trim() === '') throw errors.invalidOption('--health-cmd', v, 'it is empty', 'Give a command, for example --health-cmd "curl -f http://localhost/ || exit 1", or none');
  if (v.trim().toLowerCase() === 'none') return 'none';
  if (v.trim().startsWith('[')) {
    let words: unknown;
    try {
      words = JSON.parse(v);
    } catch {
      words = undefined;
    }
    if (!Array.isArray(words) || words.length === 0 || !words.every((w) => typeof w === 'string')) {
      throw errors.invalidOption('--health-cmd', v, 'not a JSON array of strings', 'Write --health-cmd \'["CMD","pg_isready"]\', or a shell command without brackets');
    }
    if (words[0] === 'NONE') return 'none';
    const test = words[0] === 'CMD' || words[0] === 'CMD-SHELL' ? words : ['CMD', ...words];
    if (test.length < 2) throw errors.invalidOption('--health-cmd', v, 'it names no command', 'Write --health-cmd \'["CMD","pg_isready"]\'');
    return test as string[];
  }
  return ['CMD-SHELL', v];
}

/** podman's health flags as an override of the image's HEALTHCHECK, or undefined for none given. Pure. */
export function parseHealthFlags(flags: HealthFlags): HealthOverride | undefined {
  const given = flags.healthCmd !== undefined || flags.healthInterval !== undefined || flags.healthTimeout !== undefined || flags.healthRetries !== undefined || flags.healthStartPeriod !== undefined;
  if (flags.healthcheck === false) {
    if (given) throw errors.usage('--no-healthcheck was given with --health-* flags', 'Use one of them: --no-healthcheck turns every health check off');
    return { disable: true };
  }
  if (!given) return undefined;
  const cmd = flags.healthCmd === undefined ? undefined : parseHealthCmd(flags.healthCmd);
  if (cmd === 'none' || flags.healthInterval === 'disable') return { disable: true };
  const positive = (flag: string, v: string | undefined, zero = false) => {
    if (v === undefined) return undefined;
    const ms = parseGoDuration(flag, v);
    if (ms <= 0 && !zero) throw errors.invalidOption(flag, v, 'it must be longer than 0', `Give ${flag} as a duration, for example ${flag} 30s`);
    return ms;
  };
  let retries: number | undefined;
  if (flags.healthRetries !== undefined) {
    retries = Number(flags.healthRetries);
    if (!/^\d+$/.test(flags.healthRetries) || retries < 1) throw errors.invalidOption('--health-retries', flags.healthRetries, 'not a whole number of at least 1', 'For example --health-retries 3');
  }
  const o: HealthOverride = {};
  if (cmd) o.test = cmd;
  const interval = positive('--health-interval', flags.healthInterval);
  if (interval !== undefined) o.intervalMs = interval;
  const timeout = positive('--health-timeout', flags.healthTimeout);
  if (timeout !== undefined) o.timeoutMs = timeout;
  if (retries !== undefined) o.retries = retries;
  const start = positive('--health-start-period', flags.healthStartPeriod, true);
  if (start !== undefined) o.startPeriodMs = start;
  return o;
}
