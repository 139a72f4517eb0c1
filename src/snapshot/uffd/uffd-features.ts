/**
 * What the server requires of the uffd a VMM hands it, read from /proc/self/fdinfo/<fd>
 * (`API:\t<api>:<features>:<ioctls>`, in hex, printed by fs/userfaultfd.c since Linux 4.3).
 * Pure.
 * - UFFD_FEATURE_EVENT_REMOVE, which Firecracker always requests: without it the guest
 *   could give pages back unseen, and the server's page states would lie.
 * - No UFFD_FEATURE_EVENT_FORK: reading a FORK event installs a new uffd in the reader's
 *   file table, so a VMM that forks could fill the server with descriptors.
 */
import { UFFD_FEATURE_EVENT_FORK, UFFD_FEATURE_EVENT_REMOVE } from '../../os/uffd.js';

/** Set by the kernel once UFFDIO_API has been done. */
const UFFD_FEATURE_INITIALIZED = 0x8000_0000;

/** Why the uffd described by `fdinfo` cannot be served, or undefined if it can. */
export function uffdRefusal(fdinfo: string): string | undefined {
  const m = /^API:\s*([0-9a-f]+):([0-9a-f]+):/m.exec(fdinfo);
  if (!m) return 'its uffd\'s features cannot be read';
  const features = Number.parseInt(m[2]!, 16);
  if (!(features & UFFD_FEATURE_INITIALIZED)) return 'its uffd was never set up with UFFDIO_API';
  if (!(features & UFFD_FEATURE_EVENT_REMOVE)) return 'its uffd lacks UFFD_FEATURE_EVENT_REMOVE, which Firecracker always requests';
  if (features & UFFD_FEATURE_EVENT_FORK) return 'its uffd asks for UFFD_FEATURE_EVENT_FORK, which the server does not serve';
  return undefined;
}
