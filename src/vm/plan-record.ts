import { logPath } from '../logs/vm-log.js';
import type { RunOptions } from '../options/run-options.js';
import type { Layout } from '../setup/layout.js';
import type { RunPlanRecord, VmState } from '../state/vm-state.js';

/** The run as a state file records it: no credentials, no environment values. Pure. */
export function planRecord(o: RunOptions): RunPlanRecord {
  return {
    ...(o.command ? { command: o.command } : {}),
    ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    envNames: Object.keys(o.env ?? {}).sort(),
    ...(o.workdir ? { workdir: o.workdir } : {}),
    ...(o.user ? { user: o.user } : {}),
    ...(o.hostname ? { hostname: o.hostname } : {}),
    init: o.init ?? false,
    tty: o.tty ?? false,
    interactive: o.interactive ?? false,
    privileged: o.privileged ?? false,
    ...(o.podmanOptions?.length ? { podmanOptions: o.podmanOptions } : {}),
    ...(o.stopGraceSeconds !== undefined ? { stopTimeout: o.stopGraceSeconds } : {}),
    pull: {
      policy: o.pull?.policy ?? 'missing',
      tlsVerify: o.pull?.tlsVerify ?? true,
      ...(o.pull?.certDir ? { certDir: o.pull.certDir } : {}),
      ...(o.pull?.authFrom ? { credentials: o.pull.authFrom } : {}),
    },
  };
}

/**
 * The state file's fields for the run's labels, plan, detachment and log. The log is
 * kept after the VM ends without --rm, when it ran detached or `keepEnded` (a `podman
 * run`, as podman keeps its exited containers; not a clone's or a prepare's VM).
 */
export function runRecord(o: RunOptions, layout: Layout, id: string, keepEnded = false): Pick<VmState, 'labels' | 'plan' | 'detached' | 'log'> {
  return {
    ...(o.labels && Object.keys(o.labels).length > 0 ? { labels: o.labels } : {}),
    plan: planRecord(o),
    ...(o.detach ? { detached: true } : {}),
    log: { path: logPath(layout.logs, o.name, id), keep: ((o.detach ?? false) || keepEnded) && !o.rm },
  };
}
