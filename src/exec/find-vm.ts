import { existsSync } from 'node:fs';
import { errors } from '../errors/catalogue.js';
import type { Layout } from '../setup/layout.js';
import { listVms } from '../state/list.js';
import { StateStore, isOwnerAlive } from '../state/store.js';
import type { VmState } from '../state/vm-state.js';
import type { Logger } from '../util/log.js';
import { controlSocketPath } from '../vm/control-server.js';
import { notRunning } from '../lifecycle/find.js';

/** How long a command that needs a running VM waits for one still starting (a boot under TCG on a busy host). */
export const WAITS_FOR_START_MS = 180_000;

/**
 * A running VM by name or by its supervisor's (or VMM's) PID, with its control socket.
 * `waitMs`: a VM still starting (as `podman run -d` leaves it) is waited for that long,
 * as podman's exec right after `run -d` works.
 */
export async function findRunningVm(layout: Layout, log: Logger, by: { name?: string; pid?: number }, waitMs = 0): Promise<{ state: VmState; socket: string }> {
  const until = Date.now() + waitMs;
  for (;;) {
    const found = await findVm(layout, log, by);
    if (existsSync(found.socket)) return found;
    if (found.state.status !== 'starting' || Date.now() >= until) throw errors.vmNotReady(found.state.name, found.state.status);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function findVm(layout: Layout, log: Logger, by: { name?: string; pid?: number }): Promise<{ state: VmState; socket: string }> {
  let state: VmState | undefined;
  if (by.name !== undefined) {
    const loaded = await new StateStore(layout.vmState).load(by.name);
    if (loaded.ok && isOwnerAlive(loaded.state)) state = loaded.state;
    if (!loaded.ok && loaded.future) throw errors.stateCorrupt(loaded.path, loaded.why);
    if (!state) throw await notRunning(layout, by.name);
  } else {
    const [vm] = await listVms(layout, log, by.pid);
    const loaded = vm ? await new StateStore(layout.vmState).load(vm.name) : undefined;
    if (loaded?.ok) state = loaded.state;
    if (!state) throw errors.vmNotFound(`with pid ${by.pid}`);
  }
  return { state, socket: controlSocketPath(state.runDir) };
}
