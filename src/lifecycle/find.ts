import { errors } from '../errors/catalogue.js';
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
  if (!loaded?.ok || !isOwnerAlive(loaded.state)) throw errors.vmNotFound('name' in ref ? `named "${ref.name}"` : `with pid ${ref.pid}`);
  return loaded.state;
}
