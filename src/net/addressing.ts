/**
 * Addresses of one VM's network, derived from its allocation index. Pure.
 *
 * Bridged: the host end of a veth pair gets 10.200.0.0/16 split into /30s (16384 VMs);
 * the VM's namespace holds the peer and a TAP for the VMM. Inside every namespace the
 * guest has the same address, 172.30.0.2/30 behind gateway 172.30.0.1, so clones of
 * one snapshot can share it. Rootless (QEMU user networking): the guest is 10.0.2.15.
 * Every VM also gets a loopback address of its own, 127.201.x.y, for health checks.
 */
export const MAX_NET_INDEX = 16383;

export interface BridgedAddresses {
  netns: string;
  hostVeth: string;
  nsVeth: string;
  tap: string;
  hostVethIp: string;
  nsVethIp: string;
  guestIp: string;
  gatewayIp: string;
  prefix: 30;
}

export function bridgedAddresses(index: number, vmId: string): BridgedAddresses {
  if (!Number.isInteger(index) || index < 0 || index > MAX_NET_INDEX) throw new Error(`network index ${index} out of range`);
  const third = index >> 6;
  const fourth = (index & 63) * 4;
  const tag = vmId.replace(/[^0-9a-f]/g, '').slice(0, 6);
  return {
    netns: `fcvm-${vmId}`,
    hostVeth: `fcvm${tag}`,
    nsVeth: 'veth0',
    tap: 'tap0',
    hostVethIp: `10.200.${third}.${fourth + 1}`,
    nsVethIp: `10.200.${third}.${fourth + 2}`,
    guestIp: '172.30.0.2',
    gatewayIp: '172.30.0.1',
    prefix: 30,
  };
}

/** The VM's own loopback address on the host. */
export function loopbackFor(index: number): string {
  const n = index + 1;
  return `127.201.${n >> 8}.${n & 255}`;
}

/**
 * The TAP's link address, the guest's gateway, is the same in every namespace, so a
 * clone's gateway answers to the address its guest remembers from the snapshot.
 */
export const GATEWAY_MAC = '02:fc:00:00:00:01';

export const ROOTLESS = { guestIp: '10.0.2.15', prefix: 24, gatewayIp: '10.0.2.2', dnsIp: '10.0.2.3' } as const;

/** A stable locally-administered MAC from the VM id. */
export function macFor(vmId: string): string {
  const hex = (vmId.replace(/[^0-9a-f]/g, '') + '000000').slice(0, 6);
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}
