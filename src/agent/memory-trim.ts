/**
 * Before a snapshot, the guest gives back what it does not need, so the host copies
 * only memory in use (#13): it writes dirty pages to its disk, drops its clean caches
 * (page cache, dentries, inodes) and lowers free page reporting's grain from 2 MiB
 * blocks to single pages. The balloon device's free page reporting then hands the
 * freed pages to the VMM, which drops them from the RAM file (QEMU punches holes in
 * it), and the snapshot's copy skips them. The grain goes back to the kernel's own
 * before the snapshot is taken, so that neither the source nor its clones go on
 * reporting every freed page.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

export const REPORTING_ORDER = '/sys/module/page_reporting/parameters/page_reporting_order';
const DROP_CACHES = '/proc/sys/vm/drop_caches';

export interface TrimFiles {
  reportingOrder: string;
  dropCaches: string;
  sync: () => void;
}

const GUEST: TrimFiles = {
  reportingOrder: REPORTING_ORDER,
  dropCaches: DROP_CACHES,
  sync: () => void spawnSync('/run/fcvm/busybox', ['sync'], { stdio: 'ignore' }),
};

export class MemoryTrim {
  /** The kernel's own reporting order, while a trim has lowered it. */
  private saved: string | undefined;

  constructor(private readonly files: TrimFiles = GUEST) {}

  /** Drops the caches; `reporting` is false when the guest has no free page reporting (no balloon device). */
  trim(): { reporting: boolean } {
    let order: string | undefined;
    try {
      order = readFileSync(this.files.reportingOrder, 'utf8').trim();
    } catch {
      // No reporting device registered: dropping caches would give the host nothing back.
      return { reporting: false };
    }
    this.saved ??= order;
    writeFileSync(this.files.reportingOrder, '0');
    this.files.sync();
    writeFileSync(this.files.dropCaches, '3');
    return { reporting: true };
  }

  /** Puts the kernel's own reporting order back; a no-op without a trim. */
  restore(): void {
    if (this.saved === undefined) return;
    writeFileSync(this.files.reportingOrder, this.saved);
    this.saved = undefined;
  }
}
