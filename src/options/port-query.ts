import { errors } from '../errors/catalogue.js';

/** A guest port to look up: its number and protocol. */
export interface PortQuery {
  port: number;
  proto: 'tcp' | 'udp';
}

/** Parses `fcvm port`'s PORT[/PROTO] argument. Pure. */
export function parsePortQuery(value: string): PortQuery {
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(value);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) throw errors.invalidOption('port', value, 'not a port number', 'Give a guest port, for example 80 or 53/udp');
  return { port: Number(m[1]), proto: (m[2] as PortQuery['proto'] | undefined) ?? 'tcp' };
}
