import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import type { GuestNet } from '../protocol/api.js';

/**
 * `ip -batch` lines that give `dev` the plan's address and default route, replacing
 * what a restored guest had. Pure.
 */
export function ipBatchFor(dev: string, net: GuestNet): string[] {
  return [
    `link set ${dev} up`,
    `addr flush dev ${dev}`,
    `addr add ${net.address}/${net.prefix} dev ${dev}`,
    `route replace default via ${net.gateway} dev ${dev}`,
  ];
}

/** Forgets every learned link-layer address (a restored guest's gateway may be new). */
export const FLUSH_NEIGHBOURS = 'neigh flush all';

/** The first non-loopback network interface, or undefined. */
export function firstNic(sysNet = '/sys/class/net'): string | undefined {
  return readdirSync(sysNet).filter((n) => n !== 'lo').sort()[0];
}

/** Configures the guest's NIC and resolvers in one `ip` process. */
export async function configureNetwork(net: GuestNet): Promise<void> {
  const dev = firstNic();
  if (!dev) throw Object.assign(new Error('the plan has a network but the guest has no NIC'), { code: 'BAD_REQUEST' });
  await ipBatch([...ipBatchFor(dev, net), FLUSH_NEIGHBOURS]);
  writeFileSync('/etc/resolv.conf', net.dns.map((d) => `nameserver ${d}\n`).join(''));
}

/** Runs `ip -batch` with `lines`. */
export function ipBatch(lines: readonly string[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const p = spawn('ip', ['-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(Object.assign(new Error(`ip failed: ${err.trim()}`), { code: 'FAILED' }))));
    p.stdin.end(lines.join('\n') + '\n');
  });
}
