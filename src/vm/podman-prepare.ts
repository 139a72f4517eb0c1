import type { RunOptions } from '../options/run-options.js';
import { runVm } from './podman-run.js';
import type { RunEnv } from './run-context.js';
import { startupDecision, startupSteps } from './startup-steps.js';

/** What `fcvm podman prepare` prints, as one JSON line. */
export interface PrepareResult {
  result: 'created' | 'hit';
  image: string;
  key: string;
  tag: string;
  /** Wall time of the prepare, ms. */
  ms: number;
  /** Set when a broken entry was replaced: why it was unusable. */
  rebuilt?: string;
}

/**
 * `fcvm podman prepare IMAGE [run options]`: makes sure the startup snapshot that
 * `podman run` with the same options would use exists. A hit touches nothing; a miss
 * boots the VM cold, saves the snapshot, and stops the VM.
 */
export async function podmanPrepare(opts: RunOptions, env: RunEnv): Promise<PrepareResult> {
  const t0 = performance.now();
  let result: PrepareResult | undefined;
  await runVm(startupSteps('prepare'), opts, env, async (c) => {
    const d = startupDecision(c)!;
    if (d.kind === 'off') throw new Error('unreachable: prepare refuses runs without startup snapshots');
    result = {
      result: d.kind === 'hit' ? 'hit' : 'created',
      image: opts.image,
      key: d.key,
      tag: d.tag,
      ms: 0,
      ...(d.kind === 'miss' && d.rebuilt ? { rebuilt: d.rebuilt } : {}),
    };
    return 0;
  });
  return { ...result!, ms: Math.round(performance.now() - t0) };
}
