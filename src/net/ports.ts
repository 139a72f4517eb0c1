import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { errors } from '../errors/catalogue.js';
import type { PortMapping } from './publish.js';

/** Fails with a clear error if a host port of `publish` is already taken by a listener. */
export async function assertPortsFree(publish: readonly PortMapping[]): Promise<void> {
  for (const m of publish) {
    if (m.hostPort === 0) continue;
    const e = await (m.proto === 'tcp' ? tcpBindError(m.hostIp, m.hostPort) : udpBindError(m.hostIp, m.hostPort));
    if (e) throw bindRefused(m, e);
  }
}

/** What a failed trial bind on a mapping's host address and port means for the user. */
function bindRefused(m: PortMapping, code: string) {
  const spec = `${m.hostIp === '0.0.0.0' ? '' : `${m.hostIp}:`}${m.hostPort}:${m.guestPort}/${m.proto}`;
  if (code === 'EADDRINUSE') return portInUse(m, 'a process listens on it');
  if (code === 'EACCES') return errors.invalidOption('--publish', spec, `host port ${m.hostPort} is privileged (below net.ipv4.ip_unprivileged_port_start) and this user may not listen on it`, 'Use a host port of 1024 or more, or run fcvm as root');
  if (code === 'EADDRNOTAVAIL') return errors.invalidOption('--publish', spec, `${m.hostIp} is not an address of this host`, 'Give one of this host\'s addresses, or leave it out for all of them');
  return errors.invalidOption('--publish', spec, `cannot listen on host port ${m.hostPort} (${code})`, 'Pick another host port, or stop what uses it');
}

export function portInUse(m: PortMapping, by: string) {
  return errors.invalidOption('--publish', `${m.hostIp === '0.0.0.0' ? '' : `${m.hostIp}:`}${m.hostPort}:${m.guestPort}/${m.proto}`, `host port ${m.hostPort}/${m.proto} is already in use (${by})`, 'Pick another host port, or stop what uses it');
}

/** The error code of a trial listen on host:port, or undefined if the port is free. */
function tcpBindError(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

function udpBindError(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
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

/** Tries at most this many of the kernel's picks for one port before giving up. */
const PICKS = 20;

/**
 * `publish` with a host port for each mapping that has none (0): the kernel's pick of a
 * free port on its address, unless another VM publishes it (`taken`) or this VM takes it
 * twice. Run under the allocation lock, so VMs started together never pick one port.
 */
export async function assignHostPorts(publish: readonly PortMapping[], taken: readonly PortMapping[]): Promise<PortMapping[]> {
  const out: PortMapping[] = publish.filter((m) => m.hostPort !== 0);
  const assigned = new Map<PortMapping, PortMapping>();
  for (const m of publish.filter((x) => x.hostPort === 0)) {
    for (let i = 0; ; i++) {
      if (i === PICKS) throw errors.invalidOption('--publish', `${m.guestPort}/${m.proto}`, `no free host port on ${m.hostIp} after ${PICKS} tries`, 'Give the host port yourself, for example --publish 8080:80');
      const port = await kernelPick(m.proto, m.hostIp).catch((e: NodeJS.ErrnoException) => {
        throw errors.invalidOption('--publish', `${m.hostIp}::${m.guestPort}/${m.proto}`, `cannot listen on ${m.hostIp} (${e.code ?? e.message})`, 'Give an address of this host, or leave it out for all of them');
      });
      const candidate = { ...m, hostPort: port };
      if ([...taken, ...out].some((o) => samePort(o, candidate))) continue;
      out.push(candidate);
      assigned.set(m, candidate);
      break;
    }
  }
  return publish.map((m) => assigned.get(m) ?? m);
}

/** A free port the kernel picks for a listener on `host` (let go again at once). */
function kernelPick(proto: 'tcp' | 'udp', host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    if (proto === 'tcp') {
      const s = createServer();
      s.once('error', reject);
      s.listen({ host, port: 0, exclusive: true }, () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    } else {
      const s = createSocket('udp4');
      s.once('error', reject);
      s.bind({ address: host, port: 0, exclusive: true }, () => {
        const port = s.address().port;
        s.close(() => resolve(port));
      });
    }
  });
}
