import type { RunOptions } from '../options/run-options.js';
import { StateStore } from '../state/store.js';
import { CleanupStack } from '../util/cleanup-stack.js';
import { runSteps } from '../util/steps.js';
import { consoleTail } from '../vmm/console.js';
import { coldBootSteps } from './boot-steps.js';
import { superviseContainer } from './supervise.js';
import { exitCodeForSignal, type Ctx, type RunEnv } from './run-context.js';
import { errors } from '../errors/catalogue.js';

export type { RunEnv } from './run-context.js';

/**
 * `fcvm podman run`: boots a VM, runs the container in it, streams its output, and
 * resolves with the container's exit code. Everything acquired is released on return.
 */
export async function podmanRun(opts: RunOptions, env: RunEnv): Promise<number> {
  const cleanup = new CleanupStack();
  const ctx = { opts, env, cleanup, store: new StateStore(env.layout.vmState) } as Ctx;
  try {
    await runSteps(coldBootSteps, ctx, env.log, {
      signal: env.interrupt,
      error: () => errors.interrupted(String(env.interrupt.reason), exitCodeForSignal(String(env.interrupt.reason))),
    });
    return await superviseContainer(ctx);
  } finally {
    if (ctx.vm) {
      await ctx.vm.stop().catch(() => {});
      if (env.log.isLevelEnabled('debug')) env.log.debug({ console: await consoleTail(ctx.vm.consoleLog, 30) }, 'guest console');
    }
    const failures = await cleanup.run((name, e) => env.log.warn({ err: e }, `cleanup "${name}" failed`));
    if (failures.length > 0) env.log.debug({ failures: failures.length }, 'cleanup had failures');
  }
}
