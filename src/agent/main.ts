import { readFileSync } from 'node:fs';
import { Connection } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { findVirtioPort, PortLink } from './port-link.js';
import { AgentService } from './service.js';

/**
 * fcvm guest agent. Talks to the host over the virtio-serial port "fcvm.agent", one
 * Connection per host session; the container outlives sessions, so a host that
 * reconnects (after a snapshot restore, say) picks up where the last one left.
 */
const PORT_NAME = 'fcvm.agent';
const log = (msg: string) => process.stdout.write(`fcvm-agent: ${msg}\n`);

async function main(): Promise<void> {
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  let link: PortLink | undefined;
  const service = new AgentService(bootId, { arm: () => link?.arm(), disarm: () => link?.disarm() });
  const portPath = await waitForPort();
  log(`listening on ${portPath} (guest uptime ${readFileSync('/proc/uptime', 'utf8').split(' ')[0]}s, node up ${Math.round(process.uptime() * 1000)} ms)`);
  link = new PortLink(portPath, (transport) => {
    const conn = new Connection(transport, { role: 'agent', features: FEATURES, bootId });
    service.attachMain(conn);
    conn.handshake().catch(() => {});
  });
}

async function waitForPort(): Promise<string> {
  for (let i = 0; ; i++) {
    const p = findVirtioPort(PORT_NAME);
    if (p) return p;
    if (i === 500) log(`still waiting for virtio port ${PORT_NAME}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

main().catch((e) => {
  log(`fatal: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
