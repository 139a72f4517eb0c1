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

/** How far behind the host's clock as sent the guest's may be before it is set. */
export const CLOCK_SLACK_MS = 20;
/** Round trips to the host at most, and one this quick ends the asking. */
const ROUND_TRIPS = 5;
const GOOD_ROUND_TRIP_MS = 2 * CLOCK_SLACK_MS;
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

const sayNotSet = (e: Error) => void process.stderr.write(`fcvm-agent: could not set the clock: ${e.message}\n`);

/**
 * The host's clock when it sent a request is only a lower bound of its clock now: the
 * guest's is set from it only when it is behind that, and never back. Never throws.
 */
export async function setClockForward(clockMs: number): Promise<void> {
  if (clockMs - Date.now() <= CLOCK_SLACK_MS) return;
  await setClock(clockMs).catch(sayNotSet);
}

/**
 * When no round trip was quick, asks again after each of these: a guest that is busy
 * (booting, starting its container, just restored) answers slowly for a while, and a
 * slow round trip leaves the clock up to half of it off (144 ms behind, seen once).
 */
export const REFINE_RETRY_MS = [1000, 2000, 4000, 8000] as const;

type Asker = Pick<Connection, 'features' | 'request' | 'isOpen'>;

/**
 * Asks the host for its clock until a round trip is quick (a few times at most) and
 * sets the guest's from the quickest answer, if the guest's was outside what that
 * answer allows: the host's clock when it answered, up to a round trip later. Without a
 * quick one it asks again later (REFINE_RETRY_MS), while the connection lasts. Never throws.
 */
export async function refineClock(conn: Asker, retryMs: readonly number[] = REFINE_RETRY_MS, set: (clockMs: number) => Promise<unknown> = setClock): Promise<void> {
  if (!conn.features.includes(FEATURE_HOST_CLOCK)) return;
  for (const wait of [0, ...retryMs]) {
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (!conn.isOpen || (await refineOnce(conn, set))) return;
  }
}

/** One round of refineClock; true if a round trip was quick enough to trust. */
async function refineOnce(conn: Asker, set: (clockMs: number) => Promise<unknown>): Promise<boolean> {
  let best: { rtt: number; clockMs: number; guestMs: number; at: number } | undefined;
  for (let i = 0; i < ROUND_TRIPS && !(best && best.rtt <= GOOD_ROUND_TRIP_MS); i++) {
    const t0 = performance.now();
    const answer = HostClockSchema.safeParse(await conn.request(METHODS.hostClock, {}, ROUND_TRIP_MAX_MS).catch(() => undefined));
    const t1 = performance.now();
    if (!answer.success) break;
    if (!best || t1 - t0 < best.rtt) best = { rtt: t1 - t0, clockMs: answer.data.clockMs, guestMs: Date.now(), at: t1 };
  }
  if (!best) return false;
  if (best.guestMs < best.clockMs || best.guestMs > best.clockMs + best.rtt) {
    // The host answered about half a round trip before the answer came.
    await set(best.clockMs + best.rtt / 2 + (performance.now() - best.at)).catch(sayNotSet);
  }
  return best.rtt <= GOOD_ROUND_TRIP_MS;
}
