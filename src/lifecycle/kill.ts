import { errors } from '../errors/catalogue.js';
import { WAITS_FOR_START_MS } from '../exec/find-vm.js';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import { manageRequest } from '../vm/manage-client.js';
import { MANAGE } from '../vm/manage-server.js';
import { findVmState } from './find.js';
import { firstFailure } from './settle.js';

/**
 * `fcvm kill`, as podman kill: the signal goes to each VM's container (its main
 * process), through the supervisor, once it runs. Each name is reported once its container got the
 * signal; the first failure is thrown after the others were tried.
 */
export async function killVms(layout: Layout, log: Logger, names: string[], signal: string, killed: (name: string) => void): Promise<void> {
  const results = await Promise.allSettled(names.map(async (name) => {
    // A VM still starting (`run -d` returns before its container runs) is waited for, as
    // exec waits: podman kill right after podman run -d reaches the container.
    const until = Date.now() + WAITS_FOR_START_MS;
    let s = await findVmState(layout, log, { name });
    while (s.status === 'starting' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      s = await findVmState(layout, log, { name });
    }
    if (s.status === 'starting') throw errors.vmNotReady(name, s.status);
    await manageRequest(s.runDir, MANAGE.kill, { signal }, 15_000).catch((e: unknown) => {
      throw errors.killFailed(name, signal, (e as Error).message);
    });
    killed(name);
  }));
  firstFailure(results);
}
