import { readFileSync } from 'node:fs';
import { Connection } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { openGuestChannel, type ChannelLink } from './guest-channel.js';
import { AgentService } from './service.js';

/**
 * fcvm guest agent. Talks to the host over its "agent" channel (a virtio-serial port
 * under QEMU, a vsock port under Firecracker), one Connection per host session; the
 * container outlives sessions, so a host that reconnects (after a snapshot restore,
 * say) picks up where the last one left.
 */
const log = (msg: string) => process.stdout.write(`fcvm-agent: ${msg}\n`);

async function main(): Promise<void> {
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  let link: ChannelLink | undefined;
  const service = new AgentService(bootId, { arm: () => link?.arm(), disarm: () => link?.disarm() });
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
