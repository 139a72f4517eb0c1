import { open } from 'node:fs/promises';
import type { Logger } from '../../util/log.js';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The guest's only clock-event device on `microvm` is the local APIC timer (no PIT, HPET
 * or ACPI PM timer: its ACPI is hardware-reduced), and TCG has no TSC-deadline mode, so
 * the Linux guest measures the APIC timer's rate at boot: 25 ticks of 4 ms by the TSC.
 * Under TCG both count host time, so a vCPU thread the host deschedules during those
 * 100 ms makes the measurement wrong. Seen on this 2-core host under load: -10 % to
 * +13 % on 12 boots, and, when the stall comes before the first sample, a rate the
 * kernel rejects ("APIC frequency too slow"), which leaves the guest with no timer
 * interrupt at all: it hangs bringing up its second vCPU. A stall inside the window
 * makes every guest timer fire late by the same factor (soft lockups; a container whose
 * start never comes). The rate is known: QEMU's APIC timer counts a 1 GHz bus clock.
 *
 * So a cold TCG boot prints the calibration (`apic=verbose`, console loglevel 5; the
 * init script sets the console back to 4) and the driver checks it before anything
 * runs in the guest, resetting a guest whose timer is wrong.
 */
export const TIMER_CHECK_ARGS = ['apic=verbose', 'loglevel=5'] as const;

/** QEMU's APIC timer counts nanoseconds (a 1 GHz bus clock), divided by its divide register. */
export const QEMU_APIC_BUS_MHZ = 1000;

/** How far the measured rate may be off: guest timers fire this much early or late. */
export const TIMER_TOLERANCE = 0.1;

export type TimerVerdict =
  | { kind: 'ok'; busMHz: number }
  | { kind: 'wrong'; busMHz: number }
  | { kind: 'disabled' };

/** The guest kernel's verdict on its APIC timer, from its console output, if printed yet. Pure. */
export function timerVerdict(consoleText: string, expectedMHz = QEMU_APIC_BUS_MHZ, tolerance = TIMER_TOLERANCE): TimerVerdict | undefined {
  if (/APIC frequency too slow|APIC timer disabled/.test(consoleText)) return { kind: 'disabled' };
  const m = /host bus clock speed is (\d+)\.(\d+) MHz/.exec(consoleText);
  if (!m) return undefined;
  const busMHz = Number(`${m[1]}.${m[2]}`);
  return Math.abs(busMHz - expectedMHz) <= expectedMHz * tolerance ? { kind: 'ok', busMHz } : { kind: 'wrong', busMHz };
}

export const describeVerdict = (v: TimerVerdict): string =>
  v.kind === 'disabled' ? 'the guest kernel disabled its APIC timer (calibrated too slow)' : `the guest measured its APIC timer at ${v.busMHz} MHz, not ${QEMU_APIC_BUS_MHZ}`;

export interface TimerGuardDeps {
  consoleLog: string;
  /** Resets the guest (a fresh boot of the same VM); the console goes on from where it is. */
  reset: () => Promise<void>;
  alive: () => boolean;
  log: Logger;
}

/** How many resets a boot may take before it fails: each is a new 100 ms measurement. */
export const MAX_TIMER_RESETS = 5;

/**
 * Waits for the guest kernel's timer verdict and resets a guest whose timer is wrong.
 * Resolves with the resets it took once the timer is right, or when the kernel printed
 * no verdict within `waitMs` (a kernel that needs no calibration); rejects with the last
 * verdict after MAX_TIMER_RESETS resets.
 */
export async function guardGuestTimer(d: TimerGuardDeps, waitMs = 30_000, pollMs = 50): Promise<number> {
  let from = 0;
  for (let resets = 0; ; resets++) {
    const until = Date.now() + waitMs;
    let verdict: TimerVerdict | undefined;
    while (!verdict && d.alive() && Date.now() < until) {
      await sleep(pollMs);
      verdict = timerVerdict(await readFrom(d.consoleLog, from));
    }
    if (!verdict) {
      if (d.alive()) d.log.debug({ resets }, 'the guest printed no APIC timer calibration; not checked');
      return resets;
    }
    if (verdict.kind === 'ok') {
      d.log.debug({ busMHz: verdict.busMHz, resets }, 'guest APIC timer checked');
      return resets;
    }
    if (resets >= MAX_TIMER_RESETS) throw new TimerCalibrationError(verdict, resets);
    d.log.info({ verdict, resets }, 'the guest timer is wrong; resetting the guest');
    from = await sizeOf(d.consoleLog);
    await d.reset();
  }
}

export class TimerCalibrationError extends Error {
  constructor(readonly verdict: TimerVerdict, readonly resets: number) {
    super(`${describeVerdict(verdict)} after ${resets} resets`);
  }
}

async function sizeOf(path: string): Promise<number> {
  const f = await open(path, 'r').catch(() => undefined);
  if (!f) return 0;
  try {
    return (await f.stat()).size;
  } finally {
    await f.close();
  }
}

/** The console from byte `from` on (at most 256 KiB: the verdict comes within the first second). */
async function readFrom(path: string, from: number): Promise<string> {
  const f = await open(path, 'r').catch(() => undefined);
  if (!f) return '';
  try {
    const { bytesRead, buffer } = await f.read(Buffer.alloc(256 * 1024), 0, 256 * 1024, from);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await f.close();
  }
}
