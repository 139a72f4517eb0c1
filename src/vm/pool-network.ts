import { errors } from '../errors/catalogue.js';
import { bridgedAddresses, macFor, ROOTLESS } from '../net/addressing.js';
import { createBridgedNamespace } from '../net/bridged.js';
import { hostNetOps } from '../net/net-ops.js';
import { hostResolvers } from '../net/resolvers.js';
import type { HostForward } from '../vmm/driver.js';
import type { Ctx } from './run-context.js';
import { tapOwnerOf } from './network-step.js';

/**
 * A pooled clone's network comes in two halves. Before it is handed out its VMM needs
 * a NIC to start with, and nothing that is anybody's: for bridged, a namespace holding
 * the TAP (no veth, no address of its own, no ports); for rootless, QEMU's user-mode
 * NIC with no forwards. At hand-out it gets its address and its ports.
 */
export type PoolNetwork = 'bridged' | 'rootless' | 'none';

/** Why a pool cannot have this network on this driver, or undefined. */
export function poolNetworkUnsupported(c: Pick<Ctx, 'driver'>, mode: PoolNetwork): string | undefined {
  const kinds = c.driver.capabilities.nicKinds;
  if (mode === 'bridged' && !kinds.includes('tap')) return `${c.driver.name} cannot do --network bridged`;
  if (mode === 'rootless' && !kinds.includes('user')) return `${c.driver.name} has no user-mode NIC to add a pooled clone's ports to later`;
  return undefined;
}

/** The half before hand-out: the NIC the VMM starts with. `id` names the namespace, like a VM id. */
export async function poolNetwork(c: Ctx, mode: PoolNetwork, id: string): Promise<void> {
  const why = poolNetworkUnsupported(c, mode);
  if (why) throw errors.hypervisorUnavailable(c.driver.name, why);
  const mac = c.clone!.meta.machine.mac ?? macFor(id);
  if (mode === 'none') return;
  if (mode === 'bridged') {
    const a = bridgedAddresses(0, id);
    await createBridgedNamespace(a, hostNetOps, c.cleanup, tapOwnerOf(c.state.jail));
    c.nics = [{ kind: 'tap', id: 'net0', tap: a.tap, mac }];
    c.netns = a.netns;
  } else {
    c.nics = [{ kind: 'user', id: 'net0', mac, hostForwards: [] }];
  }
}

/** The half at hand-out, once the name (and so the network index) is claimed: the address, and rootless ports. */
export async function handOutNetwork(c: Ctx): Promise<void> {
  const mode = c.opts.network;
  if (mode === 'none') return;
  const publish = c.opts.publish;
  if (mode === 'bridged') {
    // The veth, NAT and ports: the network-connect step, beside vm.restored.
    const a = bridgedAddresses(c.state.netIndex, c.state.id);
    c.guestNet = { address: a.guestIp, prefix: a.prefix, gateway: a.gatewayIp, dns: await hostResolvers(a.gatewayIp) };
    c.state = { ...c.state, network: { ...c.state.network, guestIp: a.guestIp, hostPath: a.nsVethIp, netns: a.netns } };
  } else {
    const loopback = c.state.network.loopback;
    const healthPort = c.opts.healthCheck ? Number(c.opts.healthCheck.url.port || 80) : undefined;
    const forwards: HostForward[] = [
      ...publish.map((m) => ({ proto: m.proto, hostIp: m.hostIp, hostPort: m.hostPort, guestPort: m.guestPort })),
      ...(healthPort ? [{ proto: 'tcp' as const, hostIp: loopback, hostPort: healthPort, guestPort: healthPort }] : []),
    ];
    if (forwards.length > 0) {
      if (!c.vm.addHostForwards) throw errors.hypervisorUnavailable(c.driver.name, 'it cannot add ports to a running VM');
      await c.vm.addHostForwards('net0', forwards);
    }
    c.guestNet = { address: ROOTLESS.guestIp, prefix: ROOTLESS.prefix, gateway: ROOTLESS.gatewayIp, dns: [ROOTLESS.dnsIp] };
    c.state = { ...c.state, network: { ...c.state.network, guestIp: ROOTLESS.guestIp, hostPath: loopback } };
  }
  await c.store.update(c.state);
}
