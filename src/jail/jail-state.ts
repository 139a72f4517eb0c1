import * as z from 'zod/mini';
import { errors } from '../errors/catalogue.js';
import { JAIL_ID_COUNT } from './identity.js';
import { claimJailId } from './id-registry.js';

/** A VM's jail as its state file records it (and `fcvm ls --json` shows it). */
export const JailStateSchema = z.object({
  /** full: own uid, root, namespaces, seccomp, cgroup; user: an unprivileged user's VMM; off: --no-jail. */
  mode: z.enum(['full', 'user', 'off']),
  uid: z.optional(z.int()),
  gid: z.optional(z.int()),
  /** The namespaces the VMM has of its own (the network namespace is the VM's, as without a jail). */
  namespaces: z.optional(z.array(z.string())),
  /** The VM's cgroup and its limits; recorded before it is made, so a reaper finds it. */
  cgroup: z.optional(z.object({
    version: z.union([z.literal(1), z.literal(2)]),
    dirs: z.array(z.string()),
    memoryBytes: z.number(),
    pids: z.int(),
    cpuWeight: z.int(),
  })),
  /** Why the VM has no cgroup, where the host gives fcvm none. */
  cgroupWhy: z.optional(z.string()),
  seccomp: z.optional(z.string()),
});
export type JailState = z.infer<typeof JailStateSchema>;

/**
 * The jail identity of a VM being claimed: root's VMMs get an id of the reserved range
 * that no live supervisor on this host has claimed and no process runs as (see
 * claimJailId); another user's VMM keeps that user's uid.
 */
export async function claimJailIdentity(enabled: boolean): Promise<JailState> {
  if (!enabled) return { mode: 'off' };
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return { mode: 'user', uid, gid: process.getgid?.() ?? uid };
  const id = await claimJailId();
  if (id === undefined) throw errors.preflight('jail identities', `all ${JAIL_ID_COUNT} are in use`, 'Stop some VMs');
  return { mode: 'full', uid: id, gid: id };
}
