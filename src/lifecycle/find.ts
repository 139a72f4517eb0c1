import { errors } from '../errors/catalogue.js';
import type { FcvmError } from '../errors/fcvm-error.js';
import { endedVms } from '../state/ended.js';
import type { Layout } from '../setup/layout.js';
import { listVms } from '../state/list.js';
import { isOwnerAlive, StateStore } from '../state/store.js';
import type { VmState } from '../state/vm-state.js';
import type { Logger } from '../util/log.js';

/** How a command names a VM: by name, or by its supervisor's (or VMM's) PID. */
export type VmRef = { name: string } | { pid: number };

/** The state of the running VM `ref` names, after reaping what dead supervisors left. */
export async function findVmState(layout: Layout, log: Logger, ref: VmRef): Promise<VmState> {
  const listed = await listVms(layout, log, 'pid' in ref ? ref.pid : undefined);
  const name = 'name' in ref ? ref.name : listed[0]?.name;
  const loaded = name !== undefined && listed.some((v) => v.name === name) ? await new StateStore(layout.vmState).load(name) : undefined;
  if (!loaded?.ok || !isOwnerAlive(loaded.state)) throw 'name' in ref ? await notRunning(layout, ref.name) : errors.vmNotFound(`with pid ${ref.pid}`);
  return loaded.state;
}

/** Why no running VM has `name`: it ended (and was kept, with its exit code), or there is none. */
export async function notRunning(layout: Layout, name: string): Promise<FcvmError> {
  const ended = (await endedVms(layout.logs, name))[0];
  return ended ? errors.vmEnded(name, ended.exitCode) : errors.vmNotFound(`named "${name}"`);
}
