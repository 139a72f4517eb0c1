import type { Logger } from './log.js';
import { CleanupStack } from './cleanup-stack.js';
import { failpoint } from './failpoint.js';

/** A named step of a longer operation (boot, restore, setup). */
export interface Step<C> {
  name: string;
  run: (ctx: C) => Promise<unknown> | unknown;
  /**
   * Decided once the step ran: the steps that follow it, replacing the rest of the list
   * (a startup snapshot's hit restores instead of booting). Undefined keeps the list.
   */
  next?: (ctx: C) => readonly Step<C>[] | undefined;
}

/**
 * Runs steps in order and logs each with its duration: this is also the profiler.
 * A restore edits the list (replace or drop steps by name) instead of branching.
 */
export async function runSteps<C>(steps: readonly Step<C>[], ctx: C, log: Logger, stop?: { signal: AbortSignal; error: () => Error }): Promise<void> {
  const queue = [...steps];
  for (let step = queue.shift(); step; step = queue.shift()) {
    // A step is never abandoned half-way (its undos must all be registered): a signal
    // takes effect between steps.
    if (stop?.signal.aborted) throw stop.error();
    const t0 = performance.now();
    log.debug({ step: step.name }, `step ${step.name} ...`);
    await step.run(ctx);
    failpoint(`step:${step.name}`);
    log.debug({ step: step.name, ms: Math.round(performance.now() - t0) }, `step ${step.name} done`);
    const next = step.next?.(ctx);
    if (next) queue.splice(0, queue.length, ...next);
  }
}

/** Returns a copy of `steps` with the step `name` replaced (or removed when `by` is null). */
export function replaceStep<C>(steps: readonly Step<C>[], name: string, by: Step<C> | null): Step<C>[] {
  if (!steps.some((s) => s.name === name)) throw new Error(`no step named "${name}"`);
  return steps.flatMap((s) => (s.name !== name ? [s] : by ? [by] : []));
}

/** Returns a copy of `steps` with `add` inserted before the step `name`. */
export function insertBefore<C>(steps: readonly Step<C>[], name: string, add: Step<C>): Step<C>[] {
  const i = steps.findIndex((s) => s.name === name);
  if (i < 0) throw new Error(`no step named "${name}"`);
  return [...steps.slice(0, i), add, ...steps.slice(i)];
}

/** The steps after the step `name` (none if it is last). */
export function stepsAfter<C>(steps: readonly Step<C>[], name: string): Step<C>[] {
  const i = steps.findIndex((s) => s.name === name);
  if (i < 0) throw new Error(`no step named "${name}"`);
  return steps.slice(i + 1);
}

/** The steps before the step `name`, and that step. */
export function stepsThrough<C>(steps: readonly Step<C>[], name: string): Step<C>[] {
  const i = steps.findIndex((s) => s.name === name);
  if (i < 0) throw new Error(`no step named "${name}"`);
  return steps.slice(0, i + 1);
}

/**
 * The step `name` run beside the steps that follow it, up to the step `until`, which is
 * preceded by `joinName`, a step that waits for it (and fails the run if it failed). The
 * step's undos go on a stack of their own that runs at its place in `cleanup`, once the
 * step has settled: a failure elsewhere never leaves half of it behind. `settled` is told
 * how long the step took (the runner logs only the join's wait).
 */
export function runBeside<C extends { cleanup: CleanupStack }>(steps: readonly Step<C>[], name: string, until: string, joinName: string, settled?: (c: C, ms: number) => void): Step<C>[] {
  const step = steps.find((s) => s.name === name);
  if (!step) throw new Error(`no step named "${name}"`);
  const running = new WeakMap<C, Promise<unknown>>();
  const started: Step<C> = {
    name,
    run: (c) => {
      const own = new CleanupStack();
      // Every field but the cleanup stack is the context's own (reads and writes).
      const view = new Proxy(c, { get: (t, k) => (k === 'cleanup' ? own : Reflect.get(t, k)) });
      const t0 = performance.now();
      const done = (async () => step.run(view))();
      void done.then(() => settled?.(c, Math.round(performance.now() - t0)), () => {});
      done.catch(() => {});
      running.set(c, done);
      c.cleanup.push(`undo ${name}`, async () => {
        await done.catch(() => {});
        const failures = await own.run();
        if (failures.length > 0) throw failures.length === 1 ? failures[0] : new AggregateError(failures, `${failures.length} undos of ${name} failed`);
      });
    },
  };
  const join: Step<C> = { name: joinName, run: (c) => running.get(c) };
  return insertBefore(replaceStep(steps, name, started), until, join);
}
