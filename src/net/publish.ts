import { isIPv4 } from 'node:net';
import { errors } from '../errors/catalogue.js';

/** One --publish mapping. */
export interface PortMapping {
  /** Host address to listen on; 0.0.0.0 means every local address. */
  hostIp: string;
  /** 0 until the VM claims its ports: "any free port" (podman's -p GUESTPORT). */
  hostPort: number;
  guestPort: number;
  proto: 'tcp' | 'udp';
}

const HINT = 'Use --publish [[HOSTIP:]HOSTPORT:]GUESTPORT[/tcp|udp], for example --publish 8080:80, --publish 127.0.0.1:8443:443/tcp, --publish 8000-8002:9000-9002, or --publish 80 for any free host port';
/** At most this many ports in one range, so a typo (1-65535) does not set up thousands of rules. */
const MAX_RANGE = 1024;

function port(spec: string, v: string, flag: string): number {
  if (!/^\d+$/.test(v)) throw errors.invalidOption(flag, spec, `"${v}" is not a port number`, HINT);
  const n = Number(v);
  if (n < 1 || n > 65535) throw errors.invalidOption(flag, spec, `port ${n} is outside 1-65535`, HINT);
  return n;
}

/** A port or a FIRST-LAST range of them, as podman's --publish takes. */
function ports(spec: string, v: string, flag = '--publish'): number[] {
  const range = /^(\d+)-(\d+)$/.exec(v);
  if (!range) return [port(spec, v, flag)];
  const [first, last] = [port(spec, range[1]!, flag), port(spec, range[2]!, flag)];
  if (last < first) throw errors.invalidOption(flag, spec, `the range ${v} ends before it starts`, HINT);
  if (last - first + 1 > MAX_RANGE) throw errors.invalidOption(flag, spec, `the range ${v} has more than ${MAX_RANGE} ports`, 'Publish fewer ports, or several ranges');
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/** Parses --publish values (each comma-separated, the flag repeatable; ports may be ranges). Pure. */
export function parsePublish(values: readonly string[]): PortMapping[] {
  const out: PortMapping[] = [];
  for (const spec of values.flatMap((v) => v.split(',')).map((s) => s.trim())) {
    if (!spec) continue;
    const [body, proto = 'tcp', extra] = spec.split('/');
    if (extra !== undefined || (proto !== 'tcp' && proto !== 'udp')) throw errors.invalidOption('--publish', spec, `unknown protocol "${proto}"`, HINT);
    const parts = body!.split(':');
    if (parts.length > 3) throw errors.invalidOption('--publish', spec, 'expected [HOSTIP:][HOSTPORT:]GUESTPORT', HINT);
    const hostIp = parts.length === 3 ? parts[0]! : '0.0.0.0';
    if (!isIPv4(hostIp)) throw errors.invalidOption('--publish', spec, `"${hostIp}" is not an IPv4 address`, HINT);
    const guestPorts = ports(spec, parts.at(-1)!);
    // No host port (80, or HOSTIP::80): any free one, picked when the VM claims its ports.
    const anyHost = parts.length === 1 || parts.at(-2) === '';
    const hostPorts = anyHost ? guestPorts.map(() => 0) : ports(spec, parts.at(-2)!);
    if (hostPorts.length !== guestPorts.length) throw errors.invalidOption('--publish', spec, `${hostPorts.length} host ports for ${guestPorts.length} guest ports`, 'Give ranges of the same length, for example --publish 8000-8002:9000-9002');
    for (const [i, hostPort] of hostPorts.entries()) {
      const m: PortMapping = { hostIp, hostPort, guestPort: guestPorts[i]!, proto };
      const clash = hostPort !== 0 && out.find((o) => o.hostPort === m.hostPort && o.proto === m.proto && (o.hostIp === m.hostIp || o.hostIp === '0.0.0.0' || m.hostIp === '0.0.0.0'));
      if (clash) throw errors.invalidOption('--publish', spec, `host port ${m.hostPort}/${m.proto} is published twice`, 'Publish each host port once');
      out.push(m);
    }
  }
  return out;
}

/**
 * Mappings as podman lists them, a run of consecutive ports as one range
 * (8000-8002->9000-9002/tcp); `allAddresses` is what 0.0.0.0 shows as ("" drops it). Pure.
 */
export function formatMappings(ms: readonly PortMapping[], allAddresses = ''): string[] {
  const runs: PortMapping[][] = [];
  for (const m of ms) {
    const run = runs.at(-1);
    const last = run?.at(-1);
    if (run && last && last.hostIp === m.hostIp && last.proto === m.proto && m.hostPort === last.hostPort + 1 && m.guestPort === last.guestPort + 1) run.push(m);
    else runs.push([m]);
  }
  return runs.map((r) => formatRun(r, allAddresses));
}

function formatRun(run: readonly PortMapping[], allAddresses: string): string {
  const [first, last] = [run[0]!, run.at(-1)!];
  const span = (a: number, b: number) => (a === b ? `${a}` : `${a}-${b}`);
  const ip = first.hostIp === '0.0.0.0' ? (allAddresses ? `${allAddresses}:` : '') : `${first.hostIp}:`;
  return `${ip}${span(first.hostPort, last.hostPort)}->${span(first.guestPort, last.guestPort)}/${first.proto}`;
}

/** A port a container exposes: EXPOSE in its image, or podman's --expose. */
export interface ExposedPort {
  port: number;
  proto: 'tcp' | 'udp';
}

/** --expose PORT[/PROTO] or a range (8000-8002/udp), comma-separated and repeatable, as podman takes it. Pure. */
export function parseExpose(values: readonly string[]): ExposedPort[] {
  const hint = 'Use --expose PORT[/tcp|udp], for example --expose 8080 or --expose 5353/udp';
  const out: ExposedPort[] = [];
  for (const spec of values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean)) {
    const [body, proto = 'tcp', extra] = spec.split('/');
    if (extra !== undefined || (proto !== 'tcp' && proto !== 'udp')) throw errors.invalidOption('--expose', spec, `unknown protocol "${proto}"`, hint);
    for (const port of ports(spec, body!, '--expose')) out.push({ port, proto });
  }
  return out;
}

/** An image's EXPOSE keys as podman reports them ("80/tcp", "53/udp"); others are left out. Pure. */
export function exposedFromImage(keys: readonly string[]): ExposedPort[] {
  return keys.flatMap((k) => {
    const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(k);
    const port = Number(m?.[1]);
    return m && port >= 1 && port <= 65535 ? [{ port, proto: (m[2] ?? 'tcp') as 'tcp' | 'udp' }] : [];
  });
}

/**
 * -P: every exposed port that no --publish names gets any free host port on every
 * address, as podman's --publish-all. Pure.
 */
export function publishAll(publish: readonly PortMapping[], exposed: readonly ExposedPort[]): PortMapping[] {
  const out = [...publish];
  for (const e of exposed) {
    if (out.some((m) => m.guestPort === e.port && m.proto === e.proto)) continue;
    out.push({ hostIp: '0.0.0.0', hostPort: 0, guestPort: e.port, proto: e.proto });
  }
  return out;
}
