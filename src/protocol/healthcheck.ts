import type { Healthcheck } from './api.js';

/** Docker's image HEALTHCHECK as podman's image inspect reports it (durations in ns). */
export interface DockerHealthcheck {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
}

/** Docker's defaults for what a HEALTHCHECK leaves out. */
export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 } as const;

/** The image's HEALTHCHECK with Docker's defaults filled in, or undefined for none. Pure. */
export function healthcheckFrom(h: DockerHealthcheck | null | undefined): Healthcheck | undefined {
  if (!h?.Test || h.Test.length < 2 || h.Test[0] === 'NONE') return undefined;
  const ms = (ns: number | undefined, dflt: number) => (ns && ns > 0 ? Math.round(ns / 1e6) : dflt);
  return {
    test: h.Test,
    intervalMs: ms(h.Interval, HEALTH_DEFAULTS.intervalMs),
    timeoutMs: ms(h.Timeout, HEALTH_DEFAULTS.timeoutMs),
    retries: h.Retries && h.Retries > 0 ? h.Retries : HEALTH_DEFAULTS.retries,
    startPeriodMs: ms(h.StartPeriod, HEALTH_DEFAULTS.startPeriodMs),
  };
}

/** What podman's health flags change of the image's HEALTHCHECK: all of it (off), or some fields. */
export type HealthOverride =
  | { disable: true }
  | { disable?: false; test?: string[]; intervalMs?: number; timeoutMs?: number; retries?: number; startPeriodMs?: number };

/**
 * The health check a container runs: the image's, with the flags' fields put over it
 * (as Docker and podman do), or the flags' own command with the defaults. Pure.
 */
export function applyHealthOverride(image: Healthcheck | undefined, o: HealthOverride | undefined): Healthcheck | undefined {
  if (!o) return image;
  if (o.disable) return undefined;
  const test = o.test ?? image?.test;
  if (!test) return undefined;
  const base = image ?? { ...HEALTH_DEFAULTS, test };
  return {
    test,
    intervalMs: o.intervalMs ?? base.intervalMs,
    timeoutMs: o.timeoutMs ?? base.timeoutMs,
    retries: o.retries ?? base.retries,
    startPeriodMs: o.startPeriodMs ?? base.startPeriodMs,
  };
}
