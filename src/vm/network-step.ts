import { errors } from '../errors/catalogue.js';
import { bridgedAddresses, macFor, ROOTLESS } from '../net/addressing.js';
import { connectBridged, createBridgedNamespace, type TapOwner } from '../net/bridged.js';
import { hostNetOps } from '../net/net-ops.js';
import { hostResolvers } from '../net/resolvers.js';
import type { Ctx } from './run-context.js';
import type { PortMapping } from '../net/publish.js';
import { ROOTLESS_TAP, setupRootlessTap } from '../net/rootless-tap.js';
import { mkdir } from 'node:fs/promises';
import { nicSwapRefusal } from '../options/clone-options.js';
import type { JailState } from '../jail/jail-state.js';

/** Who owns a VM's TAP: a fully jailed VMM's own uid, which attaches to it without privilege. */
export function tapOwnerOf(j: JailState | undefined): TapOwner | undefined {
  return j?.mode === 'full' ? { uid: j.uid!, gid: j.gid! } : undefined;
}

/** The `network` boot step: bridged, rootless or none. */
export async function prepareNetwork(c: Ctx): Promise<void> {
  const { mode, publish } = c.opts.network === 'none' ? { mode: 'none' as const, publish: [] } : { mode: c.opts.network, publish: c.opts.publish };
  // A clone keeps its source's MAC: the guest's NIC already has it.
  const mac = c.clone?.meta.machine.mac ?? macFor(c.state.id);
  if (mode === 'none') return;
  const kinds = c.driver.capabilities.nicKinds;
  if (mode === 'bridged' && !kinds.includes('tap')) throw errors.hypervisorUnavailable(c.driver.name, `it cannot do --network ${mode}`);
  const refused = c.clone && nicSwapRefusal(c.clone.meta.plan.network.mode, mode, kinds.includes('user') ? 'user' : 'tap');
  if (refused) throw refused;
  if (mode === 'rootless' && !kinds.includes('user')) return rootlessTap(c, publish, mac);
  if (mode === 'bridged') {
    const a = bridgedAddresses(c.state.netIndex, c.state.id);
    // The namespace and TAP the VMM starts in; the way out (connectNetwork) is made beside the boot.
    await createBridgedNamespace(a, hostNetOps, c.cleanup, tapOwnerOf(c.state.jail));
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

/**
 * The `network-connect` step of a bridged VM: the veth to the host, NAT and published
 * ports. Nothing in it is needed to start the VMM, so it runs beside the boot or restore
 * (see runBeside), and is joined before the guest is told its network.
 */
export async function connectNetwork(c: Ctx): Promise<void> {
  if (c.opts.network !== 'bridged' || !c.netns) return;
  await connectBridged(bridgedAddresses(c.state.netIndex, c.state.id), c.opts.publish, c.state.id, hostNetOps, c.cleanup);
}

/**
 * Rootless for a VMM that takes TAP devices only: a user and network namespace holds
 * the TAP, slirp4netns is its way out, and the VMM joins the namespaces.
 */
async function rootlessTap(c: Ctx, publish: readonly PortMapping[], mac: string): Promise<void> {
  const loopback = c.state.network.loopback;
  const healthPort = c.opts.healthCheck ? Number(c.opts.healthCheck.url.port || 80) : undefined;
  await mkdir(c.state.runDir, { recursive: true, mode: 0o700 });
  const r = await setupRootlessTap({ runDir: c.state.runDir, publish, extra: healthPort ? [{ hostIp: loopback, port: healthPort }] : [] }, c.cleanup);
  const a = ROOTLESS_TAP;
  c.nics = [{ kind: 'tap', id: 'net0', tap: r.tap, mac }];
  c.userNamespaceOf = r.nsPid;
  c.guestNet = { address: a.guestIp, prefix: a.prefix, gateway: a.gatewayIp, dns: [a.dns] };
  c.state = { ...c.state, network: { ...c.state.network, guestIp: a.guestIp, hostPath: loopback } };
  await c.store.update(c.state);
}
