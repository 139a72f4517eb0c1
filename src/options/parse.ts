import { errors } from '../errors/catalogue.js';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** Validates a VM name or snapshot tag: no paths, no shell metacharacters, bounded length. */
export function validateName(value: string, kind = 'VM name'): string {
  if (value.length === 0) throw errors.invalidName(kind, value, 'it is empty');
  if (value.length > 63) throw errors.invalidName(kind, value, `it is ${value.length} characters long, the limit is 63`);
  if (value.includes('/') || value.includes('..')) throw errors.invalidName(kind, value, 'it looks like a path');
  if (!NAME_RE.test(value)) throw errors.invalidName(kind, value, 'it contains characters other than letters, digits, ".", "_" and "-"');
  return value;
}

/** A --pid value: a positive integer, or an error whose hint says where to find one. */
export function parsePid(value: string, hint: string): number {
  const pid = Number(value);
  if (!Number.isInteger(pid) || pid <= 0) throw errors.invalidOption('--pid', value, 'not a process ID', hint);
  return pid;
}

/** podman's rule for a variable name: any, but not empty and without white space. */
const ENV_KEY_RE = /^[^\s=]+$/;

/**
 * Parses --env values: each is KEY=VALUE[,KEY=VALUE...] (a comma starts a new pair only
 * when what follows looks like KEY=, so values may contain commas), or a bare KEY that
 * takes its value from fcvm's own environment and, as in podman, is left out when that
 * has none.
 */
export function parseEnv(values: readonly string[], hostEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  const hint = 'Use --env KEY=VALUE (repeatable, or comma-separated: --env A=1,B=2)';
  for (const value of values) {
    const parts: string[] = [];
    for (const seg of value.split(',')) {
      if (parts.length > 0 && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(seg)) parts[parts.length - 1] += `,${seg}`;
      else parts.push(seg);
    }
    for (const part of parts) {
      const eq = part.indexOf('=');
      const key = eq < 0 ? part : part.slice(0, eq);
      if (!ENV_KEY_RE.test(key)) throw errors.invalidOption('--env', value, key ? `"${key}" is not a valid variable name` : 'the variable name is empty', hint);
      if (eq >= 0) env[key] = part.slice(eq + 1);
      else if (hostEnv[key] !== undefined) env[key] = hostEnv[key]!;
    }
  }
  return env;
}

/** Parses --mem: MiB as a number, or with an M/G suffix. */
export function parseMemory(value: string, min = 256, max = 64 * 1024): number {
  const m = value.trim().match(/^(\d+)\s*([mMgG]i?[bB]?)?$/);
  const hint = `Give the guest memory in MiB, from ${min} to ${max} (for example --mem 512 or --mem 1G)`;
  if (!m) throw errors.invalidOption('--mem', value, 'not a size', hint);
  const n = Number(m[1]) * (m[2] && /^[gG]/.test(m[2]) ? 1024 : 1);
  if (n < min || n > max) throw errors.invalidOption('--mem', value, `${n} MiB is outside ${min}-${max} MiB`, hint);
  return n;
}

/** Parses --cpu: a whole number of vCPUs. */
export function parseCpus(value: string, max = 32): number {
  const hint = `Give a whole number of vCPUs from 1 to ${max}`;
  if (!/^\d+$/.test(value.trim())) throw errors.invalidOption('--cpu', value, 'not a whole number', hint);
  const n = Number(value);
  if (n < 1 || n > max) throw errors.invalidOption('--cpu', value, `${n} is outside 1-${max}`, hint);
  return n;
}

/** Picks one of `allowed`, or an error naming the flag and the choices. */
export function parseChoice<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw errors.invalidOption(flag, value, 'unknown value', `Use one of: ${allowed.join(', ')}`);
}

/**
 * Splits a command string (`flag`'s value: --cmd, or snapshot run's --exec) into words
 * as a POSIX shell would for quoting: single quotes, double quotes with backslash
 * escapes, and backslashes outside quotes. No expansion.
 */
export function splitCommand(cmd: string, flag: '--cmd' | '--exec' = '--cmd'): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < cmd.length && '"\\$`'.includes(cmd[i + 1]!)) cur += cmd[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < cmd.length) {
      cur += cmd[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw errors.invalidOption(flag, cmd, `unterminated ${quote} quote`, flag === '--cmd' ? 'Close the quote, or pass the command after "--" instead' : 'Close the quote');
  if (inWord) words.push(cur);
  return words;
}

/** Parses a size with a K/M/G/T suffix (powers of 1024) into bytes, at least `min`. */
export function parseSize(flag: string, value: string, min: number): number {
  const m = value.trim().match(/^(\d+)\s*([kKmMgGtT])?i?[bB]?$/);
  const hint = `Give ${flag} a size such as 20G or 512M`;
  if (!m) throw errors.invalidOption(flag, value, 'not a size', hint);
  const n = m[2] ? Number(m[1]) * 1024 ** ('kmgt'.indexOf(m[2].toLowerCase()) + 1) : Number(m[1]);
  if (n < min) throw errors.invalidOption(flag, value, `it is below ${Math.round(min / 2 ** 20)} MiB`, hint);
  return n;
}
