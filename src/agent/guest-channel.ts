import { readFileSync } from 'node:fs';
import type { Transport } from '../protocol/transport.js';
import { VSOCK_PORTS, type GuestChannel } from '../vmm/driver.js';
import { findVirtioPort, PortLink } from './port-link.js';
import { VsockLink } from './vsock-link.js';

/** The guest's end of one named channel, whatever carries it. */
export interface ChannelLink {
  /** Until the next SYNC, a new host session starts at SYNC (see session-sync.ts). */
  arm(): void;
  disarm(): void;
  stop(): void;
  /** Where it listens, for the console. */
  readonly where: string;
}

/** How the host reaches this guest: `fcvm.channel=vsock` on the kernel command line (Firecracker), else virtio-serial. */
export function channelKind(cmdline = readFileSync('/proc/cmdline', 'utf8')): 'vsock' | 'virtio-serial' {
  return ` ${cmdline.trim()} `.includes(' fcvm.channel=vsock ') ? 'vsock' : 'virtio-serial';
}

/**
 * Listens on the channel `name` and hands each host session to `onSession`: a
 * virtio-serial port named fcvm.NAME under QEMU, a vsock port under Firecracker.
 */
export async function openGuestChannel(name: GuestChannel, onSession: (t: Transport) => void, log: (line: string) => void): Promise<ChannelLink> {
  if (channelKind() === 'vsock') {
    const port = VSOCK_PORTS[name];
    for (let i = 0; ; i++) {
      try {
        const link = new VsockLink(port, onSession);
        return { arm: () => link.arm(), disarm: () => link.disarm(), stop: () => link.stop(), where: `vsock port ${port}` };
      } catch (e) {
        // The vsock device may still be probing.
        if (i === 500) log(`still waiting for vsock port ${port}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
  const portName = `fcvm.${name}`;
  for (let i = 0; ; i++) {
    const p = findVirtioPort(portName);
    if (p) {
      const link = new PortLink(p, onSession);
      return { arm: () => link.arm(), disarm: () => link.disarm(), stop: () => link.stop(), where: p };
    }
    if (i === 500) log(`still waiting for virtio port ${portName}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
