import { errors } from '../errors/catalogue.js';
import { bridgedAddresses, macFor, ROOTLESS } from '../net/addressing.js';
import { setupBridged } from '../net/bridged.js';
import { hostNetOps } from '../net/net-ops.js';
import { hostResolvers } from '../net/resolvers.js';
import type { Ctx } from './run-context.js';

/** The `network` boot step: bridged, rootless or none. */
export async function prepareNetwork(c: Ctx): Promise<void> {
  const { mode, publish } = c.opts.network === 'none' ? { mode: 'none' as const, publish: [] } : { mode: c.opts.network, publish: c.opts.publish };
  // A clone keeps its source's MAC: the guest's NIC already has it.
  const mac = c.clone?.meta.machine.mac ?? macFor(c.state.id);
  if (mode === 'none') return;
  if (!c.driver.capabilities.nicKinds.includes(mode === 'bridged' ? 'tap' : 'user')) {
    throw errors.hypervisorUnavailable(c.driver.name, `it cannot do --network ${mode}`);
  }
  if (mode === 'bridged') {
    const a = bridgedAddresses(c.state.netIndex, c.state.id);
    const j = c.state.jail;
    await setupBridged(a, publish, c.state.id, hostNetOps, c.cleanup, j?.mode === 'full' ? { uid: j.uid!, gid: j.gid! } : undefined);
    c.nics = [{ kind: 'tap', id: 'net0', tap: a.tap, mac }];
    c.netns = a.netns;
    c.guestNet = { address: a.guestIp, prefix: a.prefix, gateway: a.gatewayIp, dns: await hostResolvers(a.gatewayIp) };
    c.state = { ...c.state, network: { ...c.state.network, guestIp: a.guestIp, hostPath: a.nsVethIp, netns: a.netns } };
  } else {
    const loopback = c.state.network.loopback;
    // The VM's own loopback address forwards the health-check port, so the host can reach the guest.
    const healthPort = c.opts.healthCheck ? Number(c.opts.healthCheck.url.port || 80) : undefined;
    const forwards = [
      ...publish.map((m) => ({ proto: m.proto, hostIp: m.hostIp, hostPort: m.hostPort, guestPort: m.guestPort })),
      ...(healthPort ? [{ proto: 'tcp' as const, hostIp: loopback, hostPort: healthPort, guestPort: healthPort }] : []),
    ];
    c.nics = [{ kind: 'user', id: 'net0', mac, hostForwards: forwards }];
    c.guestNet = { address: ROOTLESS.guestIp, prefix: ROOTLESS.prefix, gateway: ROOTLESS.gatewayIp, dns: [ROOTLESS.dnsIp] };
    c.state = { ...c.state, network: { ...c.state.network, guestIp: ROOTLESS.guestIp, hostPath: loopback } };
  }
  await c.store.update(c.state);
}
