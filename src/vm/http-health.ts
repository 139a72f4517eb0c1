import { request } from 'node:http';

/** Where the host sends a guest URL: the VM's own path (namespace veth or loopback). Pure. */
export function probeTarget(url: URL, hostPath: string): { host: string; port: number; path: string; hostHeader: string } {
  return { host: hostPath, port: Number(url.port || 80), path: `${url.pathname}${url.search}`, hostHeader: url.host };
}

/**
 * One HTTP probe: true for a 2xx or 3xx answer within `timeoutMs`. The guest decides
 * what comes back, so the probe is bounded in time as a whole (not only while idle: a
 * guest that trickles bytes keeps a socket busy), and its connection closes as soon as
 * the status is known: the body is never read (a guest that never ended one leaked a
 * socket per probe).
 */
export function probeOnce(url: URL, hostPath: string, timeoutMs: number): Promise<boolean> {
  const t = probeTarget(url, hostPath);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(deadline);
      req.destroy();
      resolve(ok);
    };
    const req = request({ host: t.host, port: t.port, path: t.path, headers: { host: t.hostHeader }, agent: false }, (res) => {
      done((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
    });
    const deadline = setTimeout(() => done(false), timeoutMs);
    req.on('error', () => done(false));
    req.end();
  });
}

/**
 * Polls the URL every `intervalMs` and reports transitions: healthy on a success,
 * unhealthy after `retries` failures in a row. Returns a function that stops it.
 */
export function startHttpHealth(
  url: URL, hostPath: string, timeoutMs: number, report: (status: 'healthy' | 'unhealthy') => void,
  intervalMs = 1000, retries = 3,
): () => void {
  let stopped = false;
  let failures = 0;
  let last: 'healthy' | 'unhealthy' | undefined;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    const ok = await probeOnce(url, hostPath, timeoutMs);
    if (stopped) return;
    if (ok) {
      failures = 0;
      if (last !== 'healthy') report((last = 'healthy'));
    } else if (++failures >= retries && last !== 'unhealthy') report((last = 'unhealthy'));
    timer = setTimeout(() => void tick(), intervalMs);
    timer.unref();
  };
  void tick();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
