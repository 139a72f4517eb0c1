import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

/**
 * A small coverage-guided fuzzer for code that runs in this process. Coverage comes from
 * V8 itself (the inspector's precise block coverage with call counts, reset after every
 * input), so no instrumenting loader is needed and ES modules work as they are.
 *
 * Each input runs once; the blocks it reached in the files under test (with AFL-style
 * bucketed hit counts) are its features. An input with a feature no earlier input had
 * joins the corpus and is mutated further. A target that throws anything but an
 * expected error, or breaks an invariant it asserts, is a crash: the input is saved.
 *
 * Why not Jazzer.js: its only release with prebuilt binaries (4.0.0) needs glibc 2.38
 * (Debian 12 has 2.36), and older releases download their binaries from GitHub at
 * install time, which these machines cannot reach.
 */
export interface FuzzTarget {
  name: string;
  /** Runs one input; throws only on a real bug. May return a promise. */
  run(input: Buffer): void | Promise<void>;
  /** Byte strings worth inserting (magic numbers, JSON keys). */
  dictionary?: Buffer[];
  /** Parts of script URLs whose coverage counts (the code under test). */
  cover: string[];
}

export interface FuzzStats {
  execs: number;
  corpus: number;
  features: number;
  crashes: { input: string; error: string }[];
  seconds: number;
}

export interface FuzzOptions {
  corpusDir: string;
  seconds: number;
  /** Stop after this many executions (for a reproducible short run). */
  maxExecs?: number;
  /** Write inputs that found new coverage back to corpusDir. */
  save: boolean;
  crashDir: string;
  seed?: number;
  maxLen?: number;
}

export async function fuzz(target: FuzzTarget, opts: FuzzOptions): Promise<FuzzStats> {
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object): T => {
    let out: T | undefined;
    let err: Error | null = null;
    session.post(method, params ?? {}, (e, r) => ((err = e), (out = r as T)));
    if (err) throw err;
    return out!;
  };
  post('Profiler.enable');
  post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  const rng = xorshift(opts.seed ?? Date.now());
  const seen = new Set<string>();
  const features = (): string[] => {
    const { result } = post<{ result: { url: string; functions: { ranges: { startOffset: number; endOffset: number; count: number }[] }[] }[] }>('Profiler.takePreciseCoverage');
    const out: string[] = [];
    for (const script of result) {
      if (!target.cover.some((c) => script.url.includes(c))) continue;
      for (const fn of script.functions) {
        for (const r of fn.ranges) if (r.count > 0) out.push(`${script.url}:${r.startOffset}:${r.endOffset}:${bucket(r.count)}`);
      }
    }
    return out;
  };
  const corpus: Buffer[] = [];
  const stats: FuzzStats = { execs: 0, corpus: 0, features: 0, crashes: [], seconds: 0 };
  const runOne = async (input: Buffer): Promise<boolean> => {
    features(); // reset the counters
    stats.execs++;
    try {
      await target.run(input);
    } catch (e) {
      const id = sha(input);
      mkdirSync(opts.crashDir, { recursive: true });
      writeFileSync(join(opts.crashDir, `crash-${target.name}-${id}`), input);
      stats.crashes.push({ input: id, error: (e as Error).stack ?? String(e) });
      return false;
    }
    let fresh = false;
    for (const f of features()) {
      if (!seen.has(f)) {
        seen.add(f);
        fresh = true;
      }
    }
    return fresh;
  };

  mkdirSync(opts.corpusDir, { recursive: true });
  for (const f of readdirSync(opts.corpusDir).sort()) {
    const input = readFileSync(join(opts.corpusDir, f));
    await runOne(input);
    corpus.push(input);
  }
  if (corpus.length === 0) corpus.push(Buffer.alloc(0));
  const t0 = performance.now();
  const until = t0 + opts.seconds * 1000;
  const maxLen = opts.maxLen ?? 64 * 1024;
  while (performance.now() < until && (opts.maxExecs === undefined || stats.execs < opts.maxExecs)) {
    const parent = corpus[rng(corpus.length)]!;
    let input = parent;
    for (let n = 1 + rng(4); n > 0; n--) input = mutate(input, rng, corpus, target.dictionary ?? [], maxLen);
    if (await runOne(input)) {
      corpus.push(input);
      const file = join(opts.corpusDir, sha(input));
      if (opts.save && !existsSync(file)) writeFileSync(file, input);
    }
  }
  post('Profiler.stopPreciseCoverage');
  session.disconnect();
  stats.corpus = corpus.length;
  stats.features = seen.size;
  stats.seconds = Math.round((performance.now() - t0) / 100) / 10;
  return stats;
}

/** AFL's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
function bucket(n: number): number {
  return n <= 3 ? n : n < 8 ? 4 : n < 16 ? 5 : n < 32 ? 6 : n < 128 ? 7 : 8;
}

function sha(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex');
}

function xorshift(seed: number): (n: number) => number {
  let x = (seed >>> 0) || 0x9e3779b9;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return n <= 0 ? 0 : x % n;
  };
}

const INTERESTING_32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xfffff, 0x100000, 0x100001, 0x7fffffff, 0x80000000, 0xffffffff];

/** One mutation, libFuzzer-style: bit flip, byte set, insert, erase, copy, splice, dictionary, interesting u32. */
function mutate(input: Buffer, rng: (n: number) => number, corpus: Buffer[], dict: Buffer[], maxLen: number): Buffer {
  const b = Buffer.from(input);
  const at = (len: number) => rng(len + 1);
  switch (rng(9)) {
    case 0:
      if (b.length) b[rng(b.length)]! ^= 1 << rng(8);
      return b;
    case 1:
      if (b.length) b[rng(b.length)] = rng(256);
      return b;
    case 2: {
      const i = at(b.length);
      const n = 1 + rng(16);
      return clip(Buffer.concat([b.subarray(0, i), Buffer.from(Array.from({ length: n }, () => rng(256))), b.subarray(i)]), maxLen);
    }
    case 3: {
      if (!b.length) return b;
      const i = rng(b.length);
      return Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + rng(Math.min(64, b.length - i)))]);
    }
    case 4: {
      if (!b.length) return b;
      const from = rng(b.length);
      const n = 1 + rng(Math.min(256, b.length - from));
      const i = at(b.length);
      return clip(Buffer.concat([b.subarray(0, i), b.subarray(from, from + n), b.subarray(i)]), maxLen);
    }
    case 5: {
      const other = corpus[rng(corpus.length)]!;
      return clip(Buffer.concat([b.subarray(0, at(b.length)), other.subarray(rng(other.length + 1))]), maxLen);
    }
    case 6: {
      if (!dict.length) return b;
      const i = at(b.length);
      return clip(Buffer.concat([b.subarray(0, i), dict[rng(dict.length)]!, b.subarray(i)]), maxLen);
    }
    case 7: {
      if (b.length < 4) return b;
      const v = INTERESTING_32[rng(INTERESTING_32.length)]!;
      b.writeUInt32BE(v >>> 0, rng(b.length - 3));
      return b;
    }
    default: {
      // A whole frame appended, so later frames get reached too.
      const other = corpus[rng(corpus.length)]!;
      return clip(Buffer.concat([b, other]), maxLen);
    }
  }
}

function clip(b: Buffer, maxLen: number): Buffer {
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}
