import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { errors } from '../errors/catalogue.js';
import type { PortMapping } from './publish.js';

/** Fails with a clear error if a host port of `publish` is already taken by a listener. */
export async function assertPortsFree(publish: readonly PortMapping[]): Promise<void> {
  for (const m of publish) {
    const busy = await (m.proto === 'tcp' ? tcpBusy(m.hostIp, m.hostPort) : udpBusy(m.hostIp, m.hostPort));
    if (busy) throw portInUse(m, busy);
  }
}

export function portInUse(m: PortMapping, by: string) {
  return errors.invalidOption('--publish', `${m.hostIp === '0.0.0.0' ? '' : `${m.hostIp}:`}${m.hostPort}:${m.guestPort}/${m.proto}`, `host port ${m.hostPort}/${m.proto} is already in use (${by})`, 'Pick another host port, or stop what uses it');
}

function tcpBusy(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE' ? 'a process listens on it' : e.code === 'EACCES' ? 'permission denied' : undefined));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

function udpBusy(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE' ? 'a process listens on it' : undefined));
    s.bind({ address: host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

/** The first of `publish` that another of these VMs publishes (a DNAT rule, no listener), or undefined. Pure. */
export function publishedByOther(live: readonly { name: string; network: { publish: readonly PortMapping[] } }[], name: string, publish: readonly PortMapping[]): { mapping: PortMapping; by: string } | undefined {
  for (const other of live) {
    if (other.name === name) continue;
    const mapping = publish.find((m) => other.network.publish.some((o) => samePort(o, m)));
    if (mapping) return { mapping, by: other.name };
  }
  return undefined;
}

/** True if two mappings would take the same host port. Pure. */
export function samePort(a: PortMapping, b: PortMapping): boolean {
  return a.hostPort === b.hostPort && a.proto === b.proto && (a.hostIp === b.hostIp || a.hostIp === '0.0.0.0' || b.hostIp === '0.0.0.0');
}
