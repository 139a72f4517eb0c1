/**
 * Who owns what, between host and guest.
 *
 * Root server (the supervisor runs as root): owners pass through unchanged. A file the
 * guest creates belongs on the host to the guest caller's uid and gid (the server
 * switches its fsuid/fsgid for the create, as virtiofsd does), and the guest sees host
 * files with their host owners.
 *
 * Rootless server (the supervisor runs as an ordinary user U:G): the server can create
 * files only as U:G, so everything the guest creates belongs to U:G on the host. The
 * guest sees U as root (uid 0) and G as gid 0, like rootless podman's user namespace,
 * and every other host owner as nobody/nogroup (65534). chown to anything but 0:0 fails
 * with EPERM.
 */
import type { OwnerView } from './replies.js';

export const OVERFLOW_ID = 65534;

export interface Owners extends OwnerView {
  /** Whether creates run with the guest caller's fsuid/fsgid. */
  readonly switchCreds: boolean;
  /** The host uid for a guest uid in a chown, or undefined where it is not allowed. */
  hostUid(guestUid: number): number | undefined;
  hostGid(guestGid: number): number | undefined;
}

export function rootOwners(): Owners {
  return { switchCreds: true, uid: (u) => u, gid: (g) => g, hostUid: (u) => u, hostGid: (g) => g };
}

export function rootlessOwners(uid: number, gid: number): Owners {
  return {
    switchCreds: false,
    uid: (u) => (u === uid ? 0 : OVERFLOW_ID),
    gid: (g) => (g === gid ? 0 : OVERFLOW_ID),
    hostUid: (u) => (u === 0 ? uid : undefined),
    hostGid: (g) => (g === 0 ? gid : undefined),
  };
}

/** The rules for the server's own process. */
export function ownersForProcess(): Owners {
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? rootOwners() : rootlessOwners(uid, process.getgid?.() ?? 0);
}
