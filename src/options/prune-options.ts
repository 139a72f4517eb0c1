import { errors } from '../errors/catalogue.js';
import type { PrunePolicy } from '../snapshot/startup-cache.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const UNIT_BYTES: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** "90s", "30m", "12h", "7d", "2w" in ms. Pure. */
export function parseAge(value: string): number {
  const m = value.trim().match(/^(\d+(?:\.\d+)?)([smhdw])$/);
  if (!m) throw errors.invalidOption('--older-than', value, 'not an age', 'Give a number with s, m, h, d or w, for example --older-than 7d');
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** "500M", "10G", "1T" (binary units) in bytes. Pure. */
export function parseSize(value: string): number {
  // 0 needs no unit: everything that is not in use goes.
  if (/^0+$/.test(value.trim())) return 0;
  const m = value.trim().match(/^(\d+(?:\.\d+)?)\s*([kKmMgGtT])(?:i?[bB])?$/);
  if (!m) throw errors.invalidOption('--max-size', value, 'not a size', 'Give a number with K, M, G or T, for example --max-size 10G (0: all not in use)');
  return Math.floor(Number(m[1]) * UNIT_BYTES[m[2]!.toLowerCase()]!);
}

export interface PruneFlags {
  olderThan?: string;
  maxSize?: string;
  all?: boolean;
}

/** The policy of `fcvm snapshots prune`: at least one of --older-than, --max-size, --all. Pure. */
export function prunePolicyFromFlags(flags: PruneFlags): PrunePolicy {
  if (flags.olderThan === undefined && flags.maxSize === undefined && !flags.all) {
    throw errors.usage('say what to prune', 'Usage: fcvm snapshots prune [--older-than AGE] [--max-size SIZE] | --all');
  }
  return {
    ...(flags.olderThan !== undefined ? { olderThanMs: parseAge(flags.olderThan) } : {}),
    ...(flags.maxSize !== undefined ? { maxBytes: parseSize(flags.maxSize) } : {}),
    ...(flags.all ? { all: true } : {}),
  };
}
