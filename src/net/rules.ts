import type { BridgedAddresses } from './addressing.js';
import type { PortMapping } from './publish.js';

/** An iptables rule as an argument vector after the table: ["-A", "CHAIN", ...match, "-j", ...]. */
export interface Rule {
  table: 'nat' | 'filter';
  args: string[];
}

/** The comment that labels every host rule with its VM, so a reaper can find leftovers. */
export const ruleComment = (vmId: string) => `fcvm:${vmId}`;

const tag = (vmId: string) => ['-m', 'comment', '--comment', ruleComment(vmId)];

/**
 * Host-namespace rules of a bridged VM. Pure. Egress is masqueraded; each published
 * port is DNATed (PREROUTING for other hosts, OUTPUT for this one, localhost included)
 * to the VM namespace's veth address, which forwards everything to the guest. Traffic
 * from localhost is masqueraded onto the veth (route_localnet is set on it). The guest
 * reaches the host's loopback through its gateway: the namespace forwards that to the
 * host end of the veth, which is DNATed to 127.0.0.1 here.
 */
export function hostRules(a: BridgedAddresses, publish: readonly PortMapping[], vmId: string): Rule[] {
  const t = tag(vmId);
  const subnet = `${a.nsVethIp.replace(/\.\d+$/, '')}.${Number(a.nsVethIp.split('.')[3]) - 2}/30`;
  const rules: Rule[] = [
    { table: 'nat', args: ['-A', 'POSTROUTING', '-s', subnet, '!', '-o', a.hostVeth, '-j', 'MASQUERADE', ...t] },
    { table: 'nat', args: ['-A', 'POSTROUTING', '-o', a.hostVeth, '-m', 'addrtype', '--src-type', 'LOCAL', '-j', 'MASQUERADE', ...t] },
    { table: 'nat', args: ['-A', 'PREROUTING', '-i', a.hostVeth, '-d', a.hostVethIp, '-j', 'DNAT', '--to-destination', '127.0.0.1', ...t] },
    { table: 'filter', args: ['-I', 'FORWARD', '-i', a.hostVeth, '-j', 'ACCEPT', ...t] },
    { table: 'filter', args: ['-I', 'FORWARD', '-o', a.hostVeth, '-j', 'ACCEPT', ...t] },
  ];
  for (const m of publish) {
    const match = ['-p', m.proto, '-m', 'addrtype', '--dst-type', 'LOCAL', ...(m.hostIp !== '0.0.0.0' ? ['-d', m.hostIp] : []), '--dport', String(m.hostPort)];
    const to = ['-j', 'DNAT', '--to-destination', `${a.nsVethIp}:${m.guestPort}`];
    rules.push({ table: 'nat', args: ['-A', 'PREROUTING', ...match, ...to, ...t] });
    rules.push({ table: 'nat', args: ['-A', 'OUTPUT', ...match, ...to, ...t] });
  }
  return rules;
}

/** Rules inside the VM's namespace. Pure. */
export function namespaceRules(a: BridgedAddresses): Rule[] {
  return [
    { table: 'nat', args: ['-A', 'PREROUTING', '-i', a.nsVeth, '-j', 'DNAT', '--to-destination', a.guestIp] },
    { table: 'nat', args: ['-A', 'PREROUTING', '-i', a.tap, '-d', a.gatewayIp, '-j', 'DNAT', '--to-destination', a.hostVethIp] },
    { table: 'nat', args: ['-A', 'POSTROUTING', '-o', a.nsVeth, '-j', 'MASQUERADE'] },
  ];
}

/** The delete form of an add/insert rule. Pure. */
export function deleteForm(r: Rule): Rule {
  const [op, chain, ...rest] = r.args;
  if (op !== '-A' && op !== '-I') throw new Error(`not an add rule: ${r.args.join(' ')}`);
  return { table: r.table, args: ['-D', chain!, ...rest] };
}

/**
 * Rules in `iptables-save` output that carry an fcvm comment whose VM id is not in
 * `live`, as delete rules. Pure.
 */
export function staleRules(save: string, live: ReadonlySet<string>): Rule[] {
  const out: Rule[] = [];
  let table: Rule['table'] | undefined;
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line === '*nat' ? 'nat' : line === '*filter' ? 'filter' : undefined;
    const id = line.match(/--comment "?fcvm:([0-9a-z-]+)"?/)?.[1];
    if (!table || !line.startsWith('-A ') || !id || live.has(id)) continue;
    out.push({ table, args: ['-D', ...splitSaveLine(line.slice(3))] });
  }
  return out;
}

/** Splits an iptables-save rule line into arguments, honouring double quotes. */
function splitSaveLine(s: string): string[] {
  return (s.match(/"[^"]*"|\S+/g) ?? []).map((w) => w.replace(/^"(.*)"$/, '$1'));
}
