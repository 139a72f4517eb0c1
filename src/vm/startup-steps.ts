import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { METHODS } from '../protocol/api.js';
import { RemoteError } from '../protocol/connection.js';
import { captureSnapshot } from '../snapshot/create.js';
import { lookupStartup } from '../snapshot/startup-cache.js';
import { binaryIdentity, fcvmBuild, startupKey, startupTag } from '../snapshot/startup-key.js';
import { insertBefore, replaceStep, stepsAfter, stepsThrough, type Step } from '../util/steps.js';
import { QEMU_BINARY } from '../vmm/qemu/version.js';
import { coldBootSteps, guestKernelArgs } from './boot-steps.js';
import { prepareCloneDisks, restore, restored } from './clone-steps.js';
import { imageSource, type Ctx } from './run-context.js';
import { guestCmdline } from '../vmm/qemu/command.js';
import { profileKernelArgs } from '../setup/kernel-profile.js';

/**
 * Startup snapshots: `podman run` of an image from the host boots cold the first time
 * and, once the guest is up and the image loaded (before the container starts), saves
 * a snapshot of the VM keyed by everything that decides its state. Later runs with the
 * same key restore it and run their own container in it. See snapshot/startup-key.ts.
 */

/** What the startup step decided for a run. */
export type StartupDecision =
  | { kind: 'off'; why: string }
  | { kind: 'hit'; key: string; tag: string }
  | { kind: 'miss'; key: string; tag: string; rebuilt?: string };

const decisions = new WeakMap<Ctx, StartupDecision>();
/** A cold run's snapshot being completed beside its container. */
const saving = new WeakMap<Ctx, Promise<boolean>>();

export const startupDecision = (c: Ctx) => decisions.get(c);
/** For tests of the step lists: records a decision as the startup step would. */
export const __setDecisionForTest = (c: Ctx, d: StartupDecision) => void decisions.set(c, d);
/** Resolves once the run's startup snapshot is committed (true) or given up (false). */
export const startupSaved = (c: Ctx) => saving.get(c) ?? Promise.resolve(false);

/** A restore of a startup snapshot that failed before the container started: the run may boot cold instead. */
export class StartupRestoreError extends Error {
  constructor(readonly tag: string, override readonly cause: unknown) {
    super(`the startup snapshot "${tag}" could not be restored: ${isFcvmError(cause) ? cause.message : (cause as Error)?.message ?? String(cause)}`);
  }
}

/** Why this run cannot use or save a startup snapshot, or undefined when it can. */
function ineligible(c: Ctx): string | undefined {
  if (c.opts.noSnapshot) return '--no-snapshot';
  if (c.image.kind !== 'archive') return 'the image is pulled in the guest (its ID is unknown before the run)';
  if (!c.driver.capabilities.snapshot) return `hypervisor ${c.driver.name} cannot take snapshots`;
  // Debugging arguments (a hostile agent, an agent kept down) make guests nobody should reuse.
  if (process.env.FCVM_KERNEL_ARGS) return 'FCVM_KERNEL_ARGS is set';
  // An outer VM for fcvm inside fcvm, or a kernel of the user's own: boots of their own kind.
  if (c.opts.kernelProfile !== 'default') return `the ${c.opts.kernelProfile} kernel profile`;
  if (c.opts.kernel) return '--kernel';
  return undefined;
}

/** The key of the VM this run would boot. */
function keyOf(c: Ctx): string {
  if (c.image.kind !== 'archive') throw new Error('no image ID');
  return startupKey({
    fcvm: fcvmBuild(),
    hypervisor: c.driver.name,
    // Another build of the VMM may not load the device state.
    vmm: binaryIdentity(c.driver.name === 'qemu' ? QEMU_BINARY : process.env.FCVM_FIRECRACKER_BIN ?? 'firecracker'),
    accel: c.accel,
    artifacts: { kernel: c.manifest.kernel.hash, initrd: c.manifest.initrd.hash, rootfs: c.manifest.rootfs.hash },
    cmdline: guestCmdline([...profileKernelArgs(c.opts.kernelProfile), ...guestKernelArgs(c.accel)]),
    imageId: c.image.id,
    vcpus: c.opts.vcpus,
    memoryMiB: c.opts.memoryMiB,
    network: c.opts.network,
    volumeGuestPaths: c.opts.volumes.map((v) => v.guest),
  });
}

/** Finds the run's startup snapshot; a hit makes the run a restore of it. */
async function decide(c: Ctx): Promise<void> {
  const why = ineligible(c);
  if (why) return void decisions.set(c, { kind: 'off', why });
  const key = keyOf(c);
  const tag = startupTag(key);
  const found = await lookupStartup(c.env.layout, c.env.log, tag, key);
  if (found.kind === 'broken') {
    c.env.out.write(`fcvm: startup snapshot "${tag}" is unusable (${found.why}); booting cold and saving it again\n`);
    return void decisions.set(c, { kind: 'miss', key, tag, rebuilt: found.why });
  }
  if (found.kind === 'miss') return void decisions.set(c, { kind: 'miss', key, tag });
  c.clone = { tag, dir: found.dir, meta: found.meta, servePid: undefined, server: undefined, sealedFd: undefined, startup: true };
  c.accel = found.meta.machine.accel;
  decisions.set(c, { kind: 'hit', key, tag });
}

/**
 * Runs a restore step; what fails there lets the run boot cold instead, except a signal
 * to fcvm and a VMM killed from outside (SIGKILL: a user, the OOM killer): that is no
 * fault of the snapshot, and the run ends as a cold run's would, keeping the snapshot.
 */
export const fallible = (step: Step<Ctx>): Step<Ctx> => ({
  name: step.name,
  run: async (c) => {
    try {
      await step.run(c);
    } catch (e) {
      if (isFcvmError(e) && e.code === 'INTERRUPTED') throw e;
      const exit = c.vm ? await Promise.race([c.vm.exited, new Promise<undefined>((r) => setImmediate(() => r(undefined)))]) : undefined;
      if (exit?.signal === 'SIGKILL') throw e;
      throw new StartupRestoreError(c.clone!.tag, e);
    }
  },
});

/** After vm.restored: the guest must hold no container; this run's starts as a cold run's would. */
async function restoredForRun(c: Ctx): Promise<void> {
  await restored(c);
  if (c.restored?.container.state !== 'none') throw new Error(`its guest holds a container (${c.restored?.container.state})`);
  c.earlyEvents?.stop();
  c.earlyEvents = undefined;
  c.restored = undefined;
}

/**
 * Saves the startup snapshot: the agent loads the image (stage 2 has been loading it
 * since boot), then the VM pauses while its state is captured, and the rest (checksums,
 * commit) is done beside the container. Never fails the run: a snapshot that cannot be
 * saved is said in one line, and the next run boots cold again.
 */
async function saveStartup(c: Ctx, strict: boolean): Promise<void> {
  const d = decisions.get(c);
  if (d?.kind !== 'miss') return;
  // The guest's network is configured first, so a hit whose network is the same (the
  // guest's addresses are the same in every VM: net/addressing.ts) need not redo it.
  try {
    await c.configured;
  } catch (e) {
    // A run reports its failed configure itself, where it checks it.
    if (strict) throw e instanceof RemoteError ? errors.agent(METHODS.configure, e.code, e.message) : e;
    return;
  }
  const giveUp = (e: unknown) => {
    // `podman prepare` fails; a run says it in one line and goes on (another run saving the
    // same snapshot at the same moment is no failure).
    if (strict) throw e;
    if (!(isFcvmError(e) && e.code === 'SNAPSHOT_EXISTS')) c.env.out.write(`fcvm: could not save startup snapshot "${d.tag}": ${isFcvmError(e) ? e.message : (e as Error).message}\n`);
    return false;
  };
  try {
    await c.conn.request(METHODS.prepareImage, imageSource(c.image), c.opts.bootTimeoutSeconds * 1000);
  } catch (e) {
    if (strict) throw errors.agent(METHODS.prepareImage, (e as { code?: string }).code ?? 'FAILED', (e as Error).message);
    // The container's own start reports an image that cannot be loaded.
    c.env.log.debug({ err: e }, 'startup snapshot: the image was not prepared');
    return;
  }
  let finish: () => Promise<unknown>;
  try {
    finish = await captureSnapshot(c, d.tag, { key: d.key, fcvm: fcvmBuild() });
  } catch (e) {
    saving.set(c, Promise.resolve(giveUp(e)));
    return;
  }
  if (strict) {
    await finish();
    saving.set(c, Promise.resolve(true));
    return;
  }
  const done = finish().then(() => true, giveUp);
  saving.set(c, done);
  c.cleanup.push('finish the startup snapshot', () => done);
}

const startupStep: Step<Ctx> = { name: 'startup', run: decide };

/** The cold steps with the accel step moved before the name claim, and the startup step after it. */
function withDecision(): Step<Ctx>[] {
  const accel = coldBootSteps.find((s) => s.name === 'accel')!;
  let steps = replaceStep(coldBootSteps, 'accel', null);
  steps = insertBefore(steps, 'claim-name', accel);
  return insertBefore(steps, 'claim-name', startupStep);
}

/** What follows a hit: the clone's disks, restore and vm.restored instead of the boot. */
function hitSteps(after: Step<Ctx>[]): Step<Ctx>[] {
  let steps = replaceStep(after, 'disks', { name: 'disks', run: prepareCloneDisks });
  steps = replaceStep(steps, 'boot', fallible({ name: 'restore', run: restore }));
  steps = replaceStep(steps, 'agent', fallible(steps.find((s) => s.name === 'agent')!));
  return replaceStep(steps, 'configure', fallible({ name: 'restored', run: restoredForRun }));
}

/**
 * `podman run`'s steps with startup snapshots: after the startup step, a hit restores
 * and a miss boots cold and saves one. For `podman prepare`, a hit does nothing more
 * and a miss ends once its snapshot was taken.
 */
export function startupSteps(mode: 'run' | 'prepare'): readonly Step<Ctx>[] {
  const all = withDecision();
  const after = stepsAfter(all, 'startup');
  const missing = insertBefore(after, 'control-socket', { name: 'startup-snapshot', run: (c) => saveStartup(c, mode === 'prepare') });
  const step: Step<Ctx> = {
    ...startupStep,
    next: (c) => {
      const d = decisions.get(c)!;
      if (mode === 'prepare') {
        if (d.kind === 'off') throw errors.usage(`cannot prepare a startup snapshot: ${d.why}`, 'Prepare an image from the host\'s podman storage (localhost/NAME), without --no-snapshot');
        return d.kind === 'hit' ? [] : stepsThrough(missing, 'startup-snapshot');
      }
      return d.kind === 'hit' ? hitSteps(after) : d.kind === 'miss' ? missing : after;
    },
  };
  return all.map((s) => (s.name === 'startup' ? step : s));
}
