import { errors } from '../errors/catalogue.js';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import { manageRequest } from '../vm/manage-client.js';
import { MANAGE } from '../vm/manage-server.js';
import { findVmState } from './find.js';
import { firstFailure } from './settle.js';

/**
 * `fcvm kill`, as podman kill: the signal goes to each VM's container (its main
 * process), through the supervisor. Each name is reported once its container got the
 * signal; the first failure is thrown after the others were tried.
 */
export async function killVms(layout: Layout, log: Logger, names: string[], signal: string, killed: (name: string) => void): Promise<void> {
  const results = await Promise.allSettled(names.map(async (name) => {
    const s = await findVmState(layout, log, { name });
    if (s.status === 'starting') throw errors.vmNotReady(name, s.status);
    await manageRequest(s.runDir, MANAGE.kill, { signal }, 15_000).catch((e: unknown) => {
      throw errors.killFailed(name, signal, (e as Error).message);
    });
    killed(name);
  }));
  firstFailure(results);
}
