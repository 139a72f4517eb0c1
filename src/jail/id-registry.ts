import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withFileLock } from '../util/file-lock.js';
import { isSameProcessAlive, processStartTime } from '../util/proc.js';
import { jailIdsInUse, pickJailId } from './identity.js';

/**
 * Host-wide record of claimed jail ids, one file per id holding its claimer's "PID
 * START". Host-wide (not per base directory, as the network index is) because two base
 * directories on one host must never hand out the same uid. In /run: gone at reboot.
 */
export const JAIL_ID_REGISTRY = '/run/fcvm/jail-ids';

/**
 * Claims the lowest jail id no live process has claimed and no process runs as, for
 * this process (the VM's supervisor), under a host-wide lock. The claim ends with its
 * claimer: a later claim takes over an id whose claimer is gone.
 */
export async function claimJailId(registry = JAIL_ID_REGISTRY, inUse: () => Set<number> = jailIdsInUse): Promise<number | undefined> {
  mkdirSync(registry, { recursive: true, mode: 0o700 });
  return withFileLock(join(registry, '.lock'), async () => {
    const claimed = new Set(readdirSync(registry).filter((f) => /^\d+$/.test(f) && claimedByLiveProcess(join(registry, f))).map(Number));
    const id = pickJailId(claimed, inUse());
    if (id !== undefined) writeFileSync(join(registry, String(id)), `${process.pid} ${processStartTime(process.pid)}\n`);
    return id;
  });
}

/**
 * Gives up this process's claim of `id`: the VM has ended (a claim of another process is
 * left alone). Without it a claim outlived its VM until the next fcvm command reaped it.
 */
export function releaseJailId(id: number, registry = JAIL_ID_REGISTRY): void {
  const file = join(registry, String(id));
  try {
    if (readFileSync(file, 'utf8').trim() === `${process.pid} ${processStartTime(process.pid)}`) rmSync(file, { force: true });
  } catch {
    // Not claimed (any more): nothing to give up.
  }
}

/**
 * Removes the claims of dead claimers (a supervisor killed by SIGKILL leaves its claim
 * behind: harmless, since a dead claim is taken over, but a leftover all the same).
 * Returns the ids whose claims were removed.
 */
export async function reapJailIdClaims(registry = JAIL_ID_REGISTRY): Promise<number[]> {
  if (!existsSync(registry)) return [];
  return withFileLock(join(registry, '.lock'), async () => {
    const dead = readdirSync(registry).filter((f) => /^\d+$/.test(f) && !claimedByLiveProcess(join(registry, f)));
    for (const f of dead) rmSync(join(registry, f), { force: true });
    return dead.map(Number);
  });
}

/** The claims in `registry` whose claimer is gone (for tests counting leftovers). */
export function deadJailIdClaims(registry = JAIL_ID_REGISTRY): number[] {
  if (!existsSync(registry)) return [];
  return readdirSync(registry).filter((f) => /^\d+$/.test(f) && !claimedByLiveProcess(join(registry, f))).map(Number);
}

function claimedByLiveProcess(file: string): boolean {
  try {
    const [pid, start] = readFileSync(file, 'utf8').trim().split(' ').map(Number);
    return isSameProcessAlive(pid!, start!);
  } catch {
    return false;
  }
}
