import { errors } from '../errors/catalogue.js';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import { findVmState } from './find.js';
import type { PortQuery } from '../options/port-query.js';

/**
 * `fcvm port`, as podman port: each published port as "80/tcp -> 0.0.0.0:8080", or with
 * a query only where that guest port is published ("0.0.0.0:8080").
 */
export async function vmPorts(layout: Layout, log: Logger, name: string, query: PortQuery | undefined): Promise<string[]> {
  const s = await findVmState(layout, log, { name });
  const maps = s.network.publish.filter((m) => !query || (m.guestPort === query.port && m.proto === query.proto));
  if (query && maps.length === 0) throw errors.usage(`VM "${name}" does not publish ${query.port}/${query.proto}`, `Run "fcvm port ${name}" to see what it publishes`);
  return maps.map((m) => (query ? `${m.hostIp}:${m.hostPort}` : `${m.guestPort}/${m.proto} -> ${m.hostIp}:${m.hostPort}`));
}
