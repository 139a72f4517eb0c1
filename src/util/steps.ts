import type { Logger } from './log.js';
import { failpoint } from './failpoint.js';

/** A named step of a longer operation (boot, restore, setup). */
export interface Step<C> {
  name: string;
  run: (ctx: C) => Promise<unknown> | unknown;
}

/**
 * Runs steps in order and logs each with its duration: this is also the profiler.
 * A restore edits the list (replace or drop steps by name) instead of branching.
 */
export async function runSteps<C>(steps: readonly Step<C>[], ctx: C, log: Logger, stop?: { signal: AbortSignal; error: () => Error }): Promise<void> {
  for (const step of steps) {
    // A step is never abandoned half-way (its undos must all be registered): a signal
    // takes effect between steps.
    if (stop?.signal.aborted) throw stop.error();
    const t0 = performance.now();
    log.debug({ step: step.name }, `step ${step.name} ...`);
    await step.run(ctx);
    failpoint(`step:${step.name}`);
    log.debug({ step: step.name, ms: Math.round(performance.now() - t0) }, `step ${step.name} done`);
  }
}

/** Returns a copy of `steps` with the step `name` replaced (or removed when `by` is null). */
export function replaceStep<C>(steps: readonly Step<C>[], name: string, by: Step<C> | null): Step<C>[] {
  if (!steps.some((s) => s.name === name)) throw new Error(`no step named "${name}"`);
  return steps.flatMap((s) => (s.name !== name ? [s] : by ? [by] : []));
}
