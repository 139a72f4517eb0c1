import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { fuzz } from './engine.js';
import { CORPUS_ROOT, ensureSeeds } from './run.js';
import { TARGETS } from './targets.js';

/**
 * A short coverage-guided fuzz run of each protocol target, from the corpus kept in the
 * repository (every corpus input is replayed first, so it is also a regression test).
 * FCVM_FUZZ_SECONDS sets the time per target; the long run is `node dist/test/fuzz/run.js all --seconds 600`.
 */
const SECONDS = Number(process.env.FCVM_FUZZ_SECONDS ?? 8);

for (const [name, target] of Object.entries(TARGETS)) {
  test(`fuzz ${name}: no crash in a short run`, async () => {
    await ensureSeeds(name);
    const stats = await fuzz(target, { corpusDir: join(CORPUS_ROOT, name), seconds: SECONDS, save: false, crashDir: resolve('test/fuzz/crashes') });
    process.stderr.write(`fuzz ${name}: ${stats.execs} executions in ${stats.seconds}s, ${stats.crashes.length} crashes, corpus ${stats.corpus}, ${stats.features} features\n`);
    assert.deepEqual(stats.crashes.map((c) => c.error.split('\n')[0]), []);
    assert.ok(stats.execs > 100, `only ${stats.execs} executions`);
  });
}
