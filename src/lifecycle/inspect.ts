import type { Layout } from '../setup/layout.js';
import { endedListing, toListing, type VmListing } from '../state/list.js';
import type { VmState } from '../state/vm-state.js';
import type { Logger } from '../util/log.js';
import { findVmState, type VmRef } from './find.js';
import { endedVms } from '../state/ended.js';
import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { goMap } from '../util/go-template.js';
import { podmanInspectFields, podmanState } from './podman-view.js';

/** `fcvm inspect`: everything `ls --json` says, plus the run plan, the log and the run directory. */
export type VmInspection = VmListing & Pick<VmState, 'id' | 'pidStartTime' | 'runDir' | 'plan'> & { detached: boolean; logPath: string | undefined; State: Record<string, unknown> } & Record<string, unknown>;

/**
 * A VM, inspected: a running one, or else the newest kept one of that name that ended
 * (src/state/ended.ts). Never the registry's credentials: the state file has none.
 */
export async function inspectVm(layout: Layout, log: Logger, ref: VmRef): Promise<VmInspection> {
  let ended = false;
  const s = await findVmState(layout, log, ref).catch(async (e: unknown) => {
    if (!('name' in ref)) throw e;
    const kept = (await endedVms(layout.logs, ref.name))[0];
    if (!kept) throw isFcvmError(e) && e.code === 'VM_NOT_FOUND' ? errors.notRunningOrKept(ref.name) : e;
    ended = true;
    return kept;
  });
  const listing = ended ? endedListing(s) : toListing(s);
  return {
    ...listing,
    id: s.id,
    pidStartTime: s.pidStartTime,
    runDir: s.runDir,
    plan: s.plan,
    detached: s.detached ?? false,
    logPath: s.log?.path,
    State: podmanState(listing),
    ...podmanInspectFields(s),
    labels: goMap(listing.labels),
  };
}
