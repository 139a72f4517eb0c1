/**
 * Before a snapshot's pause: the guest trims (src/agent/memory-trim.ts) and the host
 * waits while the VMM drops the pages it reports free, so the paused copy of RAM is
 * smaller and quicker (#13: "write only memory the guest really uses").
 *
 * The guest kernel reports free pages 2 s after they were freed, in passes of a share
 * of each free list, 2 s apart. The first two give back most (measured on a busybox
 * guest: 214 to 175 MiB after the first, 157 MiB after 6 s, 149 MiB at the end), so the
 * wait ends when the second pass is over (the RAM held went down and then stayed for
 * PASS_DONE_MS), or at MAX_MS. A guest that gives nothing back is waited for
 * NO_REPORT_MS at most.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export const POLL_MS = 100;
/** No report this long after the trim (the first comes 2 s after the frees), or after a pass: no more to give back. */
export const NO_REPORT_MS = 3000;
/** A pass is over when the RAM held has not gone down for this long. */
export const PASS_DONE_MS = 600;
/** Passes waited for. */
export const PASSES = 2;
export const MAX_MS = 5500;
/** Less than this given back is not a report (the guest goes on touching pages). */
export const REPORT_BYTES = 2 ** 20;

export interface TrimWait {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const REAL: TrimWait = { now: () => performance.now(), sleep: (ms) => sleep(ms) };

export interface Trimmed {
  /** Bytes held before the guest trimmed, and when the wait ended. */
  before: number;
  after: number;
  ms: number;
}

/** Waits for the guest's reports to settle; `held` gives the bytes the host holds for the VM's RAM. */
export async function awaitReports(held: () => Promise<number>, before: number, clock: TrimWait = REAL): Promise<Trimmed> {
  const start = clock.now();
  let bytes = before;
  // The lowest level seen, and when it was last lowered by a report.
  let low = before;
  let reportedAt: number | undefined;
  let passes = 0;
  // Since the trim, or since the last pass ended.
  let since = start;
  for (;;) {
    await clock.sleep(POLL_MS);
    const at = clock.now();
    bytes = await held();
    if (bytes <= low - REPORT_BYTES) {
      low = bytes;
      reportedAt = at;
    }
    const elapsed = at - start;
    if (elapsed >= MAX_MS) break;
    if (reportedAt === undefined) {
      if (at - since >= NO_REPORT_MS) break;
    } else if (at - reportedAt >= PASS_DONE_MS) {
      // A pass is over; the next one starts 2 s after it.
      reportedAt = undefined;
      since = at;
      if (++passes >= PASSES) break;
    }
  }
  return { before, after: bytes, ms: Math.round(clock.now() - start) };
}
