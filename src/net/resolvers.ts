import { readFile } from 'node:fs/promises';

/**
 * The host's DNS resolvers for the guest. Loopback resolvers (a local stub) are not
 * reachable from the guest as such; the guest asks its gateway instead, which leads to
 * the host's loopback.
 */
export async function hostResolvers(gateway: string, resolvConf = '/etc/resolv.conf'): Promise<string[]> {
  const text = await readFile(resolvConf, 'utf8').catch(() => '');
  return parseResolvers(text, gateway);
}

/** Pure part of hostResolvers. */
export function parseResolvers(text: string, gateway: string): string[] {
  const servers = [...text.matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!);
  const out = [...new Set(servers.map((s) => (s.startsWith('127.') ? gateway : s)))];
  return out.length > 0 ? out : [gateway];
}
