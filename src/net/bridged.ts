import type { CleanupStack } from '../util/cleanup-stack.js';
import { failpoint } from '../util/failpoint.js';
import { GATEWAY_MAC, type BridgedAddresses } from './addressing.js';
import type { NetOps } from './net-ops.js';
import type { PortMapping } from './publish.js';
import { deleteForm, hostRules, namespaceRules } from './rules.js';

/** The owner of a TAP: the jailed VMM's identity, which can then attach to it without privilege. */
export type TapOwner = { uid: number; gid: number };

/**
 * Builds a bridged VM's network: its namespace, a veth pair to the host, a TAP for the
 * VMM inside the namespace (owned by `tapOwner`, the jailed VMM's identity, which can
 * then attach to it without privilege), NAT for egress and DNAT for published ports.
 * Each acquisition registers its undo; deleting the namespace also removes the veth and TAP.
 */
export async function setupBridged(a: BridgedAddresses, publish: readonly PortMapping[], vmId: string, ops: NetOps, cleanup: CleanupStack, tapOwner?: TapOwner): Promise<void> {
  await createBridgedNamespace(a, ops, cleanup, tapOwner);
  await connectBridged(a, publish, vmId, ops, cleanup);
}

/**
 * The part of a bridged network that needs no address of its own: the namespace and the
 * TAP in it (owned by `tapOwner`), behind the gateway address every guest has. A pooled
 * clone's VMM starts in it; the rest (connectBridged) comes when the clone is handed out.
 */
export async function createBridgedNamespace(a: Pick<BridgedAddresses, 'netns' | 'tap' | 'gatewayIp' | 'prefix'>, ops: NetOps, cleanup: CleanupStack, tapOwner?: TapOwner): Promise<void> {
  await ops.addNetns(a.netns);
  cleanup.push(`delete netns ${a.netns}`, () => ops.deleteNetns(a.netns));
  failpoint('net:netns');
  await ops.ipBatch([
    'link set lo up',
    `tuntap add dev ${a.tap} mode tap${tapOwner ? ` user ${tapOwner.uid} group ${tapOwner.gid}` : ''}`,
    `link set dev ${a.tap} address ${GATEWAY_MAC}`,
    `addr add ${a.gatewayIp}/${a.prefix} dev ${a.tap}`,
    `link set ${a.tap} up`,
  ], a.netns);
}

/** Connects the namespace to the host: a veth pair on the VM's own addresses, NAT for egress, DNAT for published ports. */
export async function connectBridged(a: BridgedAddresses, publish: readonly PortMapping[], vmId: string, ops: NetOps, cleanup: CleanupStack): Promise<void> {
  await ops.ipBatch([
    `link add ${a.hostVeth} type veth peer name ${a.nsVeth} netns ${a.netns}`,
    `addr add ${a.hostVethIp}/${a.prefix} dev ${a.hostVeth}`,
    `link set ${a.hostVeth} up`,
  ]);
  cleanup.push(`delete veth ${a.hostVeth}`, () => ops.ipBatch([`link delete ${a.hostVeth}`]).catch(() => {}));
  failpoint('net:veth');
  await ops.ipBatch([
    `addr add ${a.nsVethIp}/${a.prefix} dev ${a.nsVeth}`,
    `link set ${a.nsVeth} up`,
    `route add default via ${a.hostVethIp}`,
  ], a.netns);
  await ops.sysctl('net/ipv4/ip_forward', '1', a.netns);
  await ops.iptablesApply(namespaceRules(a), a.netns);
  failpoint('net:namespace-rules');
  await ops.sysctl('net/ipv4/ip_forward', '1');
  await ops.sysctl(`net/ipv4/conf/${a.hostVeth}/route_localnet`, '1');
  const rules = hostRules(a, publish, vmId);
  await ops.iptablesApply(rules);
  cleanup.push('delete host iptables rules', () => ops.iptablesApply(rules.map(deleteForm)));
}
