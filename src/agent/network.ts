import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import type { GuestNet } from '../protocol/api.js';

/** `ip -batch` lines that give `dev` the plan's address and default route. Pure. */
export function ipBatchFor(dev: string, net: GuestNet): string[] {
  return [`link set ${dev} up`, `addr add ${net.address}/${net.prefix} dev ${dev}`, `route add default via ${net.gateway} dev ${dev}`];
}

/** The first non-loopback network interface, or undefined. */
export function firstNic(sysNet = '/sys/class/net'): string | undefined {
  return readdirSync(sysNet).filter((n) => n !== 'lo').sort()[0];
}

/** Configures the guest's NIC and resolvers in one `ip` process. */
export async function configureNetwork(net: GuestNet): Promise<void> {
  const dev = firstNic();
  if (!dev) throw Object.assign(new Error('the plan has a network but the guest has no NIC'), { code: 'BAD_REQUEST' });
  await new Promise<void>((resolve, reject) => {
    const p = spawn('ip', ['-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(Object.assign(new Error(`ip failed: ${err.trim()}`), { code: 'FAILED' }))));
    p.stdin.end(ipBatchFor(dev, net).join('\n') + '\n');
  });
  writeFileSync('/etc/resolv.conf', net.dns.map((d) => `nameserver ${d}\n`).join(''));
}
