/**
 * What one volume's passthrough is given: read-only or not, how owners map, and how
 * many descriptors it may hold.
 */
import type { Owners } from './owners.js';

/**
 * Descriptors one volume may hold. The supervisor's RLIMIT_NOFILE is shared by all its
 * volumes and its own work, and a guest may keep far more inodes cached than that.
 */
export interface FdLimits {
  /** O_PATH descriptors of inodes; beyond this the least recently used are closed and reopened by path. */
  inodeFds: number;
  /** Open files and directories (guest opens); beyond this, EMFILE. */
  handles: number;
  /** POSIX lock owners' descriptors; beyond this, ENOLCK. */
  lockOwners: number;
}

export const DEFAULT_LIMITS: FdLimits = { inodeFds: 8192, handles: 4096, lockOwners: 512 };

export interface VolumeOptions {
  readOnly: boolean;
  owners: Owners;
  limits?: FdLimits;
}
