import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { fuzz } from './engine.js';
import { seedsFor } from './seeds.js';
import { TARGETS } from './targets.js';

/**
 * The fuzzer's command line:
 *   node dist/test/fuzz/run.js TARGET|all [--seconds N] [--save] [--seed N]
 * Corpus: test/fuzz/corpus/TARGET (seeded with recorded traffic when empty; --save adds
 * inputs that found new coverage). Crashes: test/fuzz/crashes. Exits 1 on a crash.
 */
export const CORPUS_ROOT = resolve('test/fuzz/corpus');

export async function ensureSeeds(target: string): Promise<void> {
  const dir = join(CORPUS_ROOT, target);
  if (existsSync(dir) && readdirSync(dir).length > 0) return;
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  for (const s of await seedsFor(target)) writeFileSync(join(dir, createHash('sha1').update(s).digest('hex')), s);
}

async function main(argv: string[]): Promise<number> {
  const name = argv[0] ?? 'all';
  const seconds = Number(argv[argv.indexOf('--seconds') + 1] ?? 60) || 60;
  const seed = argv.includes('--seed') ? Number(argv[argv.indexOf('--seed') + 1]) : undefined;
  const names = name === 'all' ? Object.keys(TARGETS) : [name];
  let failed = false;
  for (const n of names) {
    const target = TARGETS[n];
    if (!target) throw new Error(`unknown target "${n}"; targets: ${Object.keys(TARGETS).join(', ')}`);
    await ensureSeeds(n);
    const stats = await fuzz(target, { corpusDir: join(CORPUS_ROOT, n), seconds, save: argv.includes('--save'), crashDir: resolve('test/fuzz/crashes'), ...(seed !== undefined ? { seed } : {}) });
    process.stdout.write(`${n}: ${stats.execs} executions in ${stats.seconds}s, ${stats.crashes.length} crashes, corpus ${stats.corpus}, ${stats.features} coverage features\n`);
    for (const c of stats.crashes.slice(0, 3)) process.stdout.write(`  crash ${c.input}: ${c.error.split('\n').slice(0, 4).join(' | ')}\n`);
    failed ||= stats.crashes.length > 0;
  }
  return failed ? 1 : 0;
}

if (process.argv[1]?.endsWith('/fuzz/run.js')) process.exitCode = await main(process.argv.slice(2));
