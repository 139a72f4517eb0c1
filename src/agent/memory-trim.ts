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
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

/** A sync that takes longer is left to finish on its own: the trim goes on without it. */
export const SYNC_LIMIT_MS = 20_000;

export interface TrimFiles {
  reportingOrder: string;
  dropCaches: string;
  /** The balloon driver's directory: a bound device is a `virtioN` entry in it. */
  balloonDriver: string;
  sync: () => Promise<void>;
}

const GUEST: TrimFiles = {
  reportingOrder: '/sys/module/page_reporting/parameters/page_reporting_order',
  dropCaches: '/proc/sys/vm/drop_caches',
  balloonDriver: '/sys/bus/virtio/drivers/virtio_balloon',
  sync: async () => void (await promisify(execFile)('/run/fcvm/busybox', ['sync'], { timeout: SYNC_LIMIT_MS }).catch(() => {})),
};

export class MemoryTrim {
  /** The kernel's own reporting order, while a trim has lowered it. */
  private saved: string | undefined;
  /** A trim under way: a restore waits for it, or it would lower the order again after. */
  private pending: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly files: TrimFiles = GUEST,
    private readonly warn: (msg: string) => void = (msg) => void process.stderr.write(`fcvm-agent: ${msg}\n`),
  ) {}

  /** Drops the caches; `reporting` is false where no device takes free page reports (no balloon). */
  trim(): Promise<{ reporting: boolean }> {
    const run = this.pending.then(() => this.trimNow());
    this.pending = run.catch(() => {});
    return run;
  }

  private async trimNow(): Promise<{ reporting: boolean }> {
    const order = this.reportingOrder();
    if (order === undefined) return { reporting: false };
    this.saved ??= order;
    writeFileSync(this.files.reportingOrder, '0');
    await this.files.sync();
    writeFileSync(this.files.dropCaches, '3');
    return { reporting: true };
  }

  /** The kernel's reporting order, where a balloon device is bound to take the reports. */
  private reportingOrder(): string | undefined {
    try {
      if (!readdirSync(this.files.balloonDriver).some((n) => /^virtio\d+$/.test(n))) return undefined;
      const order = readFileSync(this.files.reportingOrder, 'utf8').trim();
      return /^\d+$/.test(order) ? order : undefined;
    } catch {
      return undefined;
    }
  }

  /** Puts the kernel's own reporting order back once a trim under way is done; never throws. */
  async restore(): Promise<void> {
    await this.pending;
    const order = this.saved;
    this.saved = undefined;
    if (order === undefined) return;
    try {
      writeFileSync(this.files.reportingOrder, order);
    } catch (e) {
      this.warn(`could not put free page reporting's order back to ${order}: ${(e as Error).message}`);
    }
  }
}
