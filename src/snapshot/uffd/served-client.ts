import { EAGAIN, EEXIST, ENOENT, ESRCH, UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMOVE, UFFD_MSG_SIZE, type UffdOps } from '../../os/uffd.js';
import { addressOf, locate, PAGE_4K, type Region } from './mappings.js';

/** What the server knows of each page of the memory file, for one client. */
const MISSING = 0;
const PRESENT = 1;
/** Removed by the guest (MADV_DONTNEED, a balloon): its next fault gets zeros, not the file. */
const REMOVED = 2;

/** Messages read per read(2) of the uffd. */
const BATCH = 64;
/** Rounds of reading events before other clients get their turn. */
const ROUNDS_PER_TURN = 8;
/** Largest run of recorded pages the prefetcher copies in one ioctl. */
const PREFETCH_RUN = 64;

export interface ClientStats {
  faults: number;
  zeroPages: number;
  prefetched: number;
  removes: number;
  /** Faults for pages that were already there (several vCPUs, or the prefetcher, first). */
  already: number;
}

/** A copy that failed for good: the VMM's memory is gone (it exited), or something is wrong. */
function copyFailed(e: number): TurnResult {
  return { kind: 'gone', why: e === -ESRCH || e === -ENOENT ? 'its VMM exited' : `UFFDIO_COPY failed (errno ${-e})` };
}

/** How a turn of serving ended. */
export type TurnResult = { kind: 'idle' } | { kind: 'busy' } | { kind: 'gone'; why: string } | { kind: 'refuse'; why: string };

/** The snapshot's memory file as mapped by the server, and a zero source for huge pages. */
export interface MemoryMap {
  base: number;
  size: number;
  /** A read-only mapping of zeros, one huge page long (UFFDIO_ZEROPAGE is EINVAL on hugetlb). */
  zero: number;
}

/**
 * One VMM whose guest memory this worker serves: its uffd, its regions (checked), and a
 * state per page. Faults are answered with UFFDIO_COPY from the memory file, or with
 * zeros for pages the guest removed; addresses outside every region are refused.
 */
export class ServedClient {
  readonly stats: ClientStats = { faults: 0, zeroPages: 0, prefetched: 0, removes: 0, already: 0 };
  private readonly state: Uint8Array;
  private readonly msgs = new Uint8Array(BATCH * UFFD_MSG_SIZE);
  private readonly u32 = new Uint32Array(this.msgs.buffer);
  private readonly hint = new Int32Array(1);
  /** Faults that met EAGAIN (a REMOVE not yet read): retried after the next read. */
  private retry: number[] = [];
  /** The first faults of each page, in order, while recording the working set. */
  recording: number[] | undefined;
  private prefetch: { pages: Uint32Array; at: number } | undefined;

  constructor(
    readonly id: string,
    readonly uffd: number,
    readonly regions: readonly Region[],
    readonly pageSize: number,
    private readonly mem: MemoryMap,
    private readonly ops: UffdOps,
    opts: { record?: boolean; prefetch?: Uint32Array } = {},
  ) {
    this.state = new Uint8Array(Math.ceil(mem.size / pageSize));
    if (opts.record) this.recording = [];
    if (opts.prefetch && opts.prefetch.length > 0) this.prefetch = { pages: opts.prefetch, at: 0 };
  }

  get prefetching(): boolean {
    return this.prefetch !== undefined;
  }

  /** Reads and answers what the uffd holds, for a bounded number of rounds. */
  serve(): TurnResult {
    for (let round = 0; round < ROUNDS_PER_TURN; round++) {
      const n = this.ops.read(this.uffd, this.msgs);
      if (n < 0) {
        if (n !== -EAGAIN) return { kind: 'gone', why: `reading its uffd failed (errno ${-n})` };
        return this.retry.length > 0 ? this.retryFaults() : { kind: 'idle' };
      }
      if (n === 0) return { kind: 'gone', why: 'its uffd was closed' };
      // Removals first: a fault read in the same batch may be for a page just removed.
      for (let i = 0; i < n; i++) {
        if (this.msgs[i * UFFD_MSG_SIZE] === UFFD_EVENT_REMOVE) {
          const w = (i * UFFD_MSG_SIZE) / 4;
          this.markRemoved(this.u32[w + 2]! + this.u32[w + 3]! * 0x1_0000_0000, this.u32[w + 4]! + this.u32[w + 5]! * 0x1_0000_0000);
        }
      }
      if (this.retry.length > 0) {
        const r = this.retryFaults();
        if (r.kind === 'gone' || r.kind === 'refuse') return r;
      }
      for (let i = 0; i < n; i++) {
        const ev = this.msgs[i * UFFD_MSG_SIZE];
        if (ev !== UFFD_EVENT_PAGEFAULT) continue;
        const w = (i * UFFD_MSG_SIZE) / 4;
        const r = this.fault(this.u32[w + 4]! + this.u32[w + 5]! * 0x1_0000_0000);
        if (r !== undefined) return r;
      }
      if (n < BATCH) return this.retry.length > 0 ? { kind: 'busy' } : { kind: 'idle' };
    }
    return { kind: 'busy' };
  }

  /** Copies up to `budget` pages of the recorded working set that are still missing. */
  prefetchSome(budget: number): TurnResult {
    const p = this.prefetch;
    if (!p) return { kind: 'idle' };
    const ps = this.pageSize;
    while (budget > 0 && p.at < p.pages.length) {
      const first = p.pages[p.at++]!;
      if (first >= this.state.length || this.state[first] !== MISSING) continue;
      // A run of consecutive missing pages in one region, in one ioctl.
      const dst = addressOf(this.regions, first * ps);
      if (dst < 0) continue;
      let len = 1;
      while (len < PREFETCH_RUN && p.at < p.pages.length && p.pages[p.at] === first + len && this.state[first + len] === MISSING && addressOf(this.regions, (first + len) * ps) === dst + len * ps) {
        len++;
        p.at++;
      }
      const e = this.ops.copy(this.uffd, dst, this.mem.base + first * ps, len * ps, true);
      const done = e === 0 ? len : Math.floor(this.ops.copied() / ps);
      for (let k = 0; k < done; k++) this.state[first + k] = PRESENT;
      this.stats.prefetched += done;
      budget -= len;
      if (e === 0 || e === -EEXIST) continue;
      // A REMOVE is pending (EAGAIN) or the VMM is going: leave the rest to the faults.
      if (e === -EAGAIN) break;
      this.prefetch = undefined;
      return copyFailed(e);
    }
    if (p.at >= p.pages.length) this.prefetch = undefined;
    return { kind: this.prefetch ? 'busy' : 'idle' };
  }

  private fault(addr: number): TurnResult | undefined {
    const off = locate(this.regions, addr, this.hint);
    if (off < 0) return { kind: 'refuse', why: `a fault at 0x${addr.toString(16)} lies outside every region it declared` };
    const r = this.regions[this.hint[0]!]!;
    return this.answer(off, r.base + (off - r.offset), addr);
  }

  /** Answers the fault for the page at file offset `off` (at `dst` in the VMM); queues it on EAGAIN. */
  private answer(off: number, dst: number, addr: number): TurnResult | undefined {
    const ps = this.pageSize;
    const page = off / ps;
    const zero = this.state[page] === REMOVED;
    let e: number;
    if (!zero) e = this.ops.copy(this.uffd, dst, this.mem.base + off, ps, true);
    else if (ps === PAGE_4K) e = this.ops.zeropage(this.uffd, dst, ps, true);
    else e = this.ops.copy(this.uffd, dst, this.mem.zero, ps, true);
    if (e === 0) {
      if (this.recording && this.state[page] === MISSING) this.recording.push(page);
      this.state[page] = PRESENT;
      this.stats.faults++;
      if (zero) this.stats.zeroPages++;
      return undefined;
    }
    if (e === -EEXIST) {
      // Already there: another vCPU's fault or the prefetcher was first. Wake the waiter.
      this.state[page] = PRESENT;
      this.stats.already++;
      this.ops.wake(this.uffd, dst, ps);
      return undefined;
    }
    if (e === -EAGAIN) {
      this.retry.push(addr);
      return undefined;
    }
    return copyFailed(e);
  }

  private retryFaults(): TurnResult {
    const again = this.retry;
    this.retry = [];
    for (const addr of again) {
      const r = this.fault(addr);
      if (r !== undefined) return r;
    }
    return this.retry.length > 0 ? { kind: 'busy' } : { kind: 'idle' };
  }

  /** Marks the pages of [start, end) in the VMM's address space as removed. */
  private markRemoved(start: number, end: number): void {
    this.stats.removes++;
    const ps = this.pageSize;
    for (const r of this.regions) {
      const from = Math.max(start, r.base);
      const to = Math.min(end, r.base + r.size);
      if (from >= to) continue;
      const first = Math.floor((r.offset + (from - r.base)) / ps);
      const last = Math.ceil((r.offset + (to - r.base)) / ps);
      this.state.fill(REMOVED, first, last);
    }
  }
}
