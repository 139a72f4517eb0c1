import { readFileSync } from 'node:fs';
import { Connection } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { FuseRelay, GUEST_RELAY_PATH } from './fuse-relay.js';
import { volumeMountPoint } from './podman-args.js';
import { findVirtioPort } from './port-link.js';
import { channelKind, openGuestChannel, type ChannelLink } from './guest-channel.js';
import { AgentService, type VolumeMounter } from './service.js';
import { bindIntoGuestOs, nestedProfile } from './guest-os-binds.js';
import { mountOps } from '../os/mount.js';

/**
 * fcvm guest agent. Talks to the host over its "agent" channel (a virtio-serial port
 * under QEMU, a vsock port under Firecracker), one Connection per host session; the
 * container outlives sessions, so a host that reconnects (after a snapshot restore,
 * say) picks up where the last one left.
 */
/** The port of the volumes' FUSE traffic, apart from the agent's control session. */
const FUSE_PORT_NAME = 'fcvm.fuse';
const log = (msg: string) => process.stdout.write(`fcvm-agent: ${msg}\n`);

async function main(): Promise<void> {
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  let link: ChannelLink | undefined;
  let relay: FuseRelay | undefined;
  const volumes: VolumeMounter = {
    mount: async (v) => {
      // Started with the first volume: a VM without volumes pays nothing.
      if (!relay) {
        if (channelKind() !== 'virtio-serial') throw new Error('volumes ride on virtio-serial only so far; the vsock relay is not built yet');
        const port = findVirtioPort(FUSE_PORT_NAME);
        if (!port) throw new Error(`the guest has no virtio port ${FUSE_PORT_NAME}`);
        relay = new FuseRelay(GUEST_RELAY_PATH, { kind: 'port', path: port }, log);
      }
      await relay.mount({ index: v.index, mountPoint: volumeMountPoint(v.index), readOnly: v.readOnly });
      if (nestedProfile()) bindIntoGuestOs(mountOps(), volumeMountPoint(v.index), v.guest);
    },
  };
  const service = new AgentService(bootId, {
    // A snapshot re-syncs both links in a clone; the relay then re-sends what is unanswered.
    arm: async () => {
      link?.arm();
      await relay?.arm();
    },
    disarm: async () => {
      link?.disarm();
      await relay?.disarm();
    },
  }, volumes);
  link = await openGuestChannel('agent', (transport) => {
    const conn = new Connection(transport, { role: 'agent', features: FEATURES, bootId });
    service.attachMain(conn);
    conn.handshake().catch(() => {});
  }, log);
  log(`listening on ${link.where} (guest uptime ${readFileSync('/proc/uptime', 'utf8').split(' ')[0]}s, node up ${Math.round(process.uptime() * 1000)} ms)`);
}

main().catch((e) => {
  log(`fatal: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
