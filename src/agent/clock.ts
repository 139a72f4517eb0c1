/**
 * The guest's wall clock. A fresh guest's RTC gives whole seconds, and a paused or
 * restored guest's clock stood still: the host sends its clock with those requests,
 * and the agent sets the guest's to it at once. What the request spent on its way
 * (queued behind others, read late by a busy guest: up to about 100 ms under TCG) is
 * then corrected by asking the host (METHODS.hostClock) and counting half of the
 * quickest of a few round trips. A guest behind the host puts the times the host
 * stamps on volume files in its future, which make and ls take for clock skew.
 */
import { METHODS, HostClockSchema } from '../protocol/api.js';
import type { Connection } from '../protocol/connection.js';
import { FEATURE_HOST_CLOCK } from '../protocol/messages.js';
import { restoreOps, type RestoreOps } from '../os/libc.js';

/** How far the guest's clock may be from the host's as sent before it is set. */
export const CLOCK_SLACK_MS = 20;
const ROUND_TRIPS = 3;
/** A round trip slower than this says too little about when the host answered. */
const ROUND_TRIP_MAX_MS = 500;

/**
 * Sets the clock to the host's `clockMs`, plus the time it took here to get to it
 * (koffi's first load takes hundreds of milliseconds under TCG).
 */
export async function setClock(clockMs: number): Promise<RestoreOps> {
  const received = performance.now();
  const ops = await restoreOps();
  ops.setRealtime(clockMs + (performance.now() - received));
  return ops;
}

/** Asks the host for its clock a few times and sets the guest's from the quickest answer; never throws. */
export async function refineClock(conn: Connection): Promise<void> {
  if (!conn.features.includes(FEATURE_HOST_CLOCK)) return;
  let best: { rtt: number; clockMs: number; at: number } | undefined;
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const t0 = performance.now();
    const answer = HostClockSchema.safeParse(await conn.request(METHODS.hostClock, {}, ROUND_TRIP_MAX_MS).catch(() => undefined));
    const t1 = performance.now();
    if (!answer.success) return;
    if (!best || t1 - t0 < best.rtt) best = { rtt: t1 - t0, clockMs: answer.data.clockMs, at: t1 };
  }
  if (!best) return;
  try {
    // The host answered about half a round trip before the answer came.
    (await restoreOps()).setRealtime(best.clockMs + best.rtt / 2 + (performance.now() - best.at));
  } catch (e) {
    process.stderr.write(`fcvm-agent: could not set the clock: ${(e as Error).message}\n`);
  }
}
