/**
 * Fault-around for the page server: what the kernel does for file mappings (it maps up to
 * `fault_around_bytes`, 64 KiB by default, of page cache around a read fault), done with
 * one UFFDIO_COPY. A fault is answered with the run of pages around it that are in the
 * same state (all still missing, or all given back by the guest), inside an aligned window
 * and inside the fault's region. One ioctl then serves what would have been many faults,
 * each a round trip through the server. Pure.
 */

/** The kernel's default fault_around_bytes. */
export const DEFAULT_FAULT_AROUND_BYTES = 64 * 1024;
/** Above this a fault would copy more than a few huge pages' worth for one touch. */
export const MAX_FAULT_AROUND_BYTES = 2 * 1024 * 1024;

/** Pages per fault-around window for a page size: at least the faulting page. */
export function windowPages(faultAroundBytes: number, pageSize: number): number {
  return Math.max(1, Math.floor(Math.min(faultAroundBytes, MAX_FAULT_AROUND_BYTES) / pageSize));
}

/**
 * The run [first, end) of file pages around `page` whose state equals `state[page]`,
 * within the window of `window` pages aligned around `page`, clipped to the region's
 * pages [regionFirst, regionEnd).
 */
export function runAround(state: Uint8Array, page: number, window: number, regionFirst: number, regionEnd: number): { first: number; end: number } {
  const s = state[page];
  const lo = Math.max(regionFirst, page - (page % window));
  const hi = Math.min(regionEnd, page - (page % window) + window);
  let first = page;
  let end = page + 1;
  while (first > lo && state[first - 1] === s) first--;
  while (end < hi && state[end] === s) end++;
  return { first, end };
}
