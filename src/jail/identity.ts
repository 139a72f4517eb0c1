import { readdirSync, statSync } from 'node:fs';
import { MAX_NET_INDEX } from '../net/addressing.js';

/**
 * The uids and gids jailed VMMs run as: one of each per VM, the same number for both,
 * from 0x7A000000 (2046820352) up, one per possible VM. The range sits in the space
 * systemd leaves unused (above its container ranges, which end at 1879048191, below
 * 2^31 and its "foreign" range at 0x7FFE0000), so no distribution hands it out to users,
 * to systemd-nspawn containers or to podman's default subuid ranges.
 */
export const JAIL_ID_BASE = 0x7a000000;
export const JAIL_ID_COUNT = MAX_NET_INDEX + 1;

/**
 * The lowest id of the range that no live VM has claimed and no process runs as (a
 * process left over from a crash keeps its id out of use). Pure. Called under the
 * allocation lock, so two VMs started together never get the same id.
 */
export function pickJailId(claimed: ReadonlySet<number>, inUse: ReadonlySet<number>): number | undefined {
  for (let id = JAIL_ID_BASE; id < JAIL_ID_BASE + JAIL_ID_COUNT; id++) {
    if (!claimed.has(id) && !inUse.has(id)) return id;
  }
  return undefined;
}

/** True if `uid` is one of the jail range's. */
export const isJailId = (uid: number) => uid >= JAIL_ID_BASE && uid < JAIL_ID_BASE + JAIL_ID_COUNT;

/** The jail-range uids that processes on this host run as (/proc/PID is owned by its process's euid). */
export function jailIdsInUse(procRoot = '/proc'): Set<number> {
  const ids = new Set<number>();
  for (const d of readdirSync(procRoot)) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const uid = statSync(`${procRoot}/${d}`).uid;
      if (isJailId(uid)) ids.add(uid);
    } catch {
      // gone meanwhile
    }
  }
  return ids;
}
