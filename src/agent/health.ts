import { spawn } from 'node:child_process';
import type { Healthcheck } from '../protocol/api.js';

/** The podman exec argv that runs an image HEALTHCHECK in the container. Pure. */
export function healthcheckArgv(hc: Healthcheck, container: string): string[] {
  const [kind, ...rest] = hc.test;
  const cmd = kind === 'CMD-SHELL' ? ['/bin/sh', '-c', rest.join(' ')] : rest;
  return ['exec', container, ...cmd];
}

/**
 * Runs the HEALTHCHECK on its interval until stopped, reporting transitions: healthy
 * on the first success, unhealthy after `retries` consecutive failures (failures in
 * the start period do not count).
 */
export function startHealthchecks(hc: Healthcheck, container: string, report: (status: 'healthy' | 'unhealthy', output: string) => void): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;
  let last: 'healthy' | 'unhealthy' | undefined;
  const startedAt = Date.now();
  const once = async () => {
    const { code, output } = await runWithTimeout('podman', healthcheckArgv(hc, container), hc.timeoutMs);
    if (stopped) return;
    if (code === 0) {
      failures = 0;
      if (last !== 'healthy') report((last = 'healthy'), output);
    } else if (Date.now() - startedAt >= hc.startPeriodMs && ++failures >= hc.retries && last !== 'unhealthy') {
      report((last = 'unhealthy'), output);
    }
    timer = setTimeout(() => void once(), hc.intervalMs);
  };
  void once();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

function runWithTimeout(cmd: string, args: string[], ms: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d) => (output = (output + d).slice(-500)));
    p.stderr.on('data', (d) => (output = (output + d).slice(-500)));
    const t = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('error', () => resolve({ code: 127, output }));
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? 1, output: output.trim() });
    });
  });
}
