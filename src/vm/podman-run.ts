import type { RunOptions } from '../options/run-options.js';
import { isOwnerAlive, StateStore } from '../state/store.js';
import { stopVm } from '../lifecycle/stop.js';
import { CleanupStack } from '../util/cleanup-stack.js';
import { runSteps, type Step } from '../util/steps.js';
import { consoleTail } from '../vmm/console.js';
import { coldBootSteps } from './boot-steps.js';
import { startupSteps, StartupRestoreError } from './startup-steps.js';
import { removeStartupSnapshot } from '../snapshot/startup-cache.js';
import { superviseContainer } from './supervise.js';
import { exitCodeForSignal, type Ctx, type RunEnv } from './run-context.js';
import { errors } from '../errors/catalogue.js';
import { machineFault } from '../errors/os-fault.js';

export type { RunEnv } from './run-context.js';

/**
 * `fcvm podman run`: boots a VM, runs the container in it, streams its output, and
 * resolves with the container's exit code. Everything acquired is released on return.
 */
export async function podmanRun(opts: RunOptions, runEnv: RunEnv): Promise<number> {
  // As podman keeps an exited container (unless --rm): for `logs`, `ps -a` and `inspect`.
  const env = { ...runEnv, keepEnded: true };
  if (opts.replace) await replaceRunning(env, opts.name);
  if (opts.noSnapshot) return runVm(coldBootSteps, opts, env, superviseContainer);
  try {
    return await runVm(startupSteps('run'), opts, env, superviseContainer);
  } catch (e) {
    if (!(e instanceof StartupRestoreError)) throw e;
    // Nothing of the container ran yet: boot cold instead, saving the snapshot again if it could go.
    const removed = await removeStartupSnapshot(env.layout, env.log, e.tag).catch(() => false);
    env.out.write(`fcvm: ${e.message}; booting cold${removed ? ' and saving it again' : ''}\n`);
    env.log.debug({ err: e.cause }, 'startup restore failed');
    return runVm(removed ? startupSteps('run') : coldBootSteps, removed ? opts : { ...opts, noSnapshot: true }, env, superviseContainer);
  }
}

/**
 * --replace: a running VM of this name is stopped (as `fcvm stop` does, with its own
 * grace) before anything of the new one is taken, so that its ports are free again.
 */
async function replaceRunning(env: RunEnv, name: string): Promise<void> {
  const s = await new StateStore(env.layout.vmState).load(name);
  if (!s.ok || !isOwnerAlive(s.state)) return;
  env.log.info(`--replace: stopping the running VM "${name}"`);
  await stopVm(env.layout, env.log, { name }, undefined);
}

/** A promise with its resolve, for the container's exit code. */
function exitSignal(): Ctx['containerExit'] {
  let resolve!: (code: number) => void;
  const promise = new Promise<number>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Runs `steps` to bring a VM up, then `body` (which resolves with the exit code), and
 * releases everything on the way out, whatever happened. A signal stops the steps
 * between two of them, and `env.stop` works like a signal.
 */
export async function runVm(steps: readonly Step<Ctx>[], opts: RunOptions, env: RunEnv, body: (c: Ctx) => Promise<number>): Promise<number> {
  const cleanup = new CleanupStack();
  const ac = new AbortController();
  const forward = () => ac.abort(env.interrupt.reason);
  if (env.interrupt.aborted) forward();
  else env.interrupt.addEventListener('abort', forward, { once: true });
  const runEnv: RunEnv = { ...env, interrupt: ac.signal, stop: (reason) => ac.abort(reason) };
  const ctx = { opts, env: runEnv, cleanup, store: new StateStore(env.layout.vmState), containerExit: exitSignal() } as Ctx;
  try {
    try {
      await runSteps(steps, ctx, env.log, {
        signal: ac.signal,
        error: () => errors.interrupted(String(ac.signal.reason), exitCodeForSignal(String(ac.signal.reason))),
      });
    } catch (e) {
      // A full or read-only filesystem says so, whichever step met it.
      throw machineFault(e, 'starting the VM', env.layout.base) ?? e;
    }
    return await body(ctx);
  } finally {
    env.interrupt.removeEventListener('abort', forward);
    if (ctx.vm) {
      await ctx.vm.stop().catch(() => {});
      if (env.log.isLevelEnabled('debug')) env.log.debug({ console: await consoleTail(ctx.vm.consoleLog, 30) }, 'guest console');
    }
    const failures = await cleanup.run((name, e) => env.log.warn({ err: e }, `cleanup "${name}" failed`));
    if (failures.length > 0) env.log.debug({ failures: failures.length }, 'cleanup had failures');
  }
}
