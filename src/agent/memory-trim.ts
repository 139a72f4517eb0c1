/**
 * Before a snapshot, the guest gives back what it does not need, so the host copies
 * only memory in use (#13): it writes dirty pages to its disk, drops its clean caches
 * (page cache, dentries, inodes), reclaims the file pages that processes map (their
 * code: drop_caches leaves those) and lowers free page reporting's grain from 2 MiB
 * blocks to single pages. The balloon device's free page reporting then hands the
 * freed pages to the VMM, which drops them from the RAM file (QEMU punches holes in
 * it), and the snapshot's copy skips them. The grain goes back to the kernel's own
 * before the snapshot is taken, so that neither the source nor its clones go on
 * reporting every freed page.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

/** A sync that takes longer is left to finish on its own: the trim goes on without it. */
export const SYNC_LIMIT_MS = 20_000;

export interface TrimFiles {
  reportingOrder: string;
  dropCaches: string;
  /** cgroup v2's reclaim of the root group: written a size, the kernel frees that much it can evict. */
  reclaim: string;
  meminfo: string;
  /** The balloon driver's directory: a bound device is a `virtioN` entry in it. */
  balloonDriver: string;
  sync: () => Promise<void>;
}

const GUEST: TrimFiles = {
  reportingOrder: '/sys/module/page_reporting/parameters/page_reporting_order',
  dropCaches: '/proc/sys/vm/drop_caches',
  reclaim: '/sys/fs/cgroup/memory.reclaim',
  meminfo: '/proc/meminfo',
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
    await this.reclaimMappedFiles();
    return { reporting: true };
  }

  /**
   * Evicts the file pages that drop_caches leaves because a process maps them: the
   * agent's and the container's code, about 30 of a busybox guest's 40 MiB of mapped
   * pages. What runs faults its pages back from the disk, which a clone of the
   * snapshot does too (a clone of a busybox httpd started no slower, 5 runs each). Asks
   * for all of memory: the kernel evicts what it can and says EAGAIN for the rest (asked
   * for the file pages' size only, it stopped early, counting the slab it freed too).
   * Written from libuv's thread pool: the reclaim takes about 0.6 s under TCG, and the
   * agent goes on serving meanwhile. Without cgroup v2 (no file: none is created), there is
   * nothing to do.
   */
  private async reclaimMappedFiles(): Promise<void> {
    let kb: number;
    try {
      const info = readFileSync(this.files.meminfo, 'utf8');
      const field = (name: string) => parseInt(info.split('\n').find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1) ?? '', 10);
      kb = field('MemTotal');
    } catch {
      return;
    }
    if (!(kb > 0)) return;
    await writeFile(this.files.reclaim, `${kb * 1024}`, { flag: 'r+' }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EAGAIN' && e.code !== 'ENOENT') this.warn(`could not reclaim the mapped file pages: ${e.message}`);
    });
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
