import { EAGAIN, EEXIST, ENOENT, ESRCH, UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMOVE, UFFD_MSG_SIZE, type UffdOps } from '../../os/uffd.js';
import { runAround } from './fault-around.js';
import { addressOf, locate, PAGE_4K, type Region } from './mappings.js';

/**
 * What the server knows of each page of the memory file, for one client. The VMM's uffd
 * reports every removal (the server refuses a uffd without UFFD_FEATURE_EVENT_REMOVE), and
 * the kernel zaps removed pages only after the server has read the REMOVE: so a PRESENT
 * page is in the VMM's memory, and a fault on it is one that raced with its copy.
 */
const MISSING = 0;
const PRESENT = 1;
/**
 * Removed by the guest (MADV_DONTNEED, a balloon): its faults get zeros, not the file. For
 * good: a page zero-filled between the REMOVE and the zap it announces is zapped again, and
 * must come back as zeros once more.
 */
const REMOVED = 2;

/** Messages read per read(2) of the uffd. */
const BATCH = 64;
/** Rounds of reading events before other clients get their turn. */
const ROUNDS_PER_TURN = 8;
/** Largest run of recorded pages the prefetcher copies in one ioctl. */
const PREFETCH_RUN = 64;

export interface ClientStats {
  /** Faults answered by placing pages (the faulting page, and its neighbours with fault-around). */
  faults: number;
  /** Neighbouring pages placed along with a fault's own page (fault-around). */
  around: number;
  /** Pages answered with zeros (removed by the guest), neighbours included. */
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
/** The two common ends of a turn, made once: a turn allocates nothing. */
const IDLE: TurnResult = Object.freeze({ kind: 'idle' });
const BUSY: TurnResult = Object.freeze({ kind: 'busy' });

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
  readonly stats: ClientStats = { faults: 0, around: 0, zeroPages: 0, prefetched: 0, removes: 0, already: 0 };
  private readonly state: Uint8Array;
  private readonly msgs = new Uint8Array(BATCH * UFFD_MSG_SIZE);
  private readonly u32 = new Uint32Array(this.msgs.buffer);
  private readonly hint = new Int32Array(1);
  /** Faults that met EAGAIN (a REMOVE not yet read): retried after the next read. */
  private retry: number[] = [];
  /** The first faults of each page, in order, while recording the working set. */
  recording: number[] | undefined;
  private prefetch: { pages: Uint32Array; at: number } | undefined;
  /** Pages per fault-around window (1: the faulting page only). */
  private readonly window: number;

  constructor(
    readonly id: string,
    readonly uffd: number,
    readonly regions: readonly Region[],
    readonly pageSize: number,
    private readonly mem: MemoryMap,
    private readonly ops: UffdOps,
    opts: { record?: boolean; prefetch?: Uint32Array; windowPages?: number } = {},
  ) {
    this.state = new Uint8Array(Math.ceil(mem.size / pageSize));
    this.window = opts.windowPages ?? 1;
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
        return this.retry.length > 0 ? this.retryFaults() : IDLE;
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
      if (n < BATCH) return this.retry.length > 0 ? BUSY : IDLE;
    }
    return BUSY;
  }

  /** Copies up to `budget` pages of the recorded working set that are still missing. */
  prefetchSome(budget: number): TurnResult {
    const p = this.prefetch;
    if (!p) return IDLE;
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
    return this.prefetch ? BUSY : IDLE;
  }

  private fault(addr: number): TurnResult | undefined {
    const off = locate(this.regions, addr, this.hint);
    if (off < 0) return { kind: 'refuse', why: `a fault at 0x${addr.toString(16)} lies outside every region it declared` };
    const r = this.regions[this.hint[0]!]!;
    const ps = this.pageSize;
    const page = off / ps;
    if (this.state[page] === PRESENT) {
      // Placed since this fault was raised (another vCPU's fault, a neighbour's, the prefetcher).
      this.stats.already++;
      const e = this.ops.wake(this.uffd, r.base + (off - r.offset), ps);
      return e === 0 ? undefined : copyFailed(e);
    }
    const run = runAround(this.state, page, this.state[page] === REMOVED && ps !== PAGE_4K ? 1 : this.window, r.offset / ps, (r.offset + r.size) / ps);
    const res = this.place(run.first, run.end, r);
    if (res === 'placed') {
      this.mark(run.first, run.end);
      this.stats.faults++;
      this.stats.around += run.end - run.first - 1;
      return undefined;
    }
    // The run was cut short: the pages placed before the cut are in; the fault's own page is answered alone.
    if (res > 0) this.mark(run.first, run.first + res);
    if (page < run.first + res) {
      this.stats.faults++;
      this.stats.around += res - 1;
      return undefined;
    }
    if (run.end - run.first > 1) {
      const alone = this.place(page, page + 1, r);
      if (alone === 'placed') {
        this.mark(page, page + 1);
        this.stats.faults++;
        return undefined;
      }
    }
    return this.failed(addr, r.base + (off - r.offset));
  }

  /**
   * Copies file pages [first, end) of region `r` into the VMM (or zeros, for removed
   * pages), waking their waiters: 'placed', or how many pages went in before the copy
   * stopped, with the reason left in `this.lastError`.
   */
  private place(first: number, end: number, r: Region): 'placed' | number {
    const ps = this.pageSize;
    const dst = r.base + (first * ps - r.offset);
    const len = (end - first) * ps;
    let e: number;
    if (this.state[first] !== REMOVED) e = this.ops.copy(this.uffd, dst, this.mem.base + first * ps, len, true);
    else if (ps === PAGE_4K) e = this.ops.zeropage(this.uffd, dst, len, true);
    else e = this.ops.copy(this.uffd, dst, this.mem.zero, ps, true);
    if (e === 0) {
      if (this.state[first] === REMOVED) this.stats.zeroPages += end - first;
      return 'placed';
    }
    this.lastError = e;
    const done = Math.floor(this.ops.copied() / ps);
    if (done > 0 && this.state[first] === REMOVED) this.stats.zeroPages += done;
    return done;
  }

  private lastError = 0;

  /**
   * Pages placed from the file are PRESENT (and, while recording, join the working set in
   * the order they came in); removed ones stay REMOVED (zeros if they fault again).
   */
  private mark(first: number, end: number): void {
    for (let p = first; p < end; p++) {
      if (this.state[p] !== MISSING) continue;
      this.state[p] = PRESENT;
      this.recording?.push(p);
    }
  }

  /** The fault's own page could not be placed: already there, a REMOVE pending, or the VMM gone. */
  private failed(addr: number, dst: number): TurnResult | undefined {
    const e = this.lastError;
    if (e === -EEXIST) {
      // There already: a removed page not yet zapped, or placed behind our back. Wake the waiter.
      this.stats.already++;
      const w = this.ops.wake(this.uffd, dst, this.pageSize);
      return w === 0 ? undefined : copyFailed(w);
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
    return this.retry.length > 0 ? BUSY : IDLE;
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
