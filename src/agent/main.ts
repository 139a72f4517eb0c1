import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Connection } from '../protocol/connection.js';
import { ContainerRunSchema, ContainerStopSchema, EVENTS, METHODS, VmConfigureSchema } from '../protocol/api.js';
import { FEATURES } from '../protocol/messages.js';
import { Container } from './container.js';
import { findVirtioPort, PortLink } from './port-link.js';

/**
 * fcvm guest agent. Talks to the host over the virtio-serial port "fcvm.agent", one
 * Connection per host session; the container outlives sessions, so a host that
 * reconnects (after a snapshot restore, say) picks up where the last one left.
 */
const PORT_NAME = 'fcvm.agent';
const log = (msg: string) => process.stdout.write(`fcvm-agent: ${msg}\n`);

function bad(message: string): Error {
  return Object.assign(new Error(message), { code: 'BAD_REQUEST' });
}

function parse<T>(schema: { safeParse: (v: unknown) => { success: true; data: T } | { success: false; error: { issues: { message: string; path: PropertyKey[] }[] } } }, v: unknown): T {
  const r = schema.safeParse(v);
  if (!r.success) {
    const i = r.error.issues[0];
    throw bad(`invalid params${i ? ` at ${i.path.join('.') || '(root)'}: ${i.message}` : ''}`);
  }
  return r.data;
}

async function main(): Promise<void> {
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const container = new Container();
  let current: Connection | undefined;

  const portPath = await waitForPort();
  log(`listening on ${portPath} (guest uptime ${readFileSync('/proc/uptime', 'utf8').split(' ')[0]}s, node up ${Math.round(process.uptime() * 1000)} ms)`);
  new PortLink(portPath, (transport) => {
    current?.close();
    const conn = new Connection(transport, { role: 'agent', features: FEATURES, bootId });
    current = conn;
    conn.onRequest(async (method, params) => {
      switch (method) {
        case METHODS.configure: {
          const p = parse(VmConfigureSchema, params);
          writeFileSync('/proc/sys/kernel/hostname', p.hostname);
          spawnSync('/run/fcvm/busybox', ['date', '-u', '-s', `@${Math.floor(p.clockMs / 1000)}`], { stdio: 'ignore' });
          return {};
        }
        case METHODS.run: {
          const plan = parse(ContainerRunSchema, params);
          // Output goes to whichever session is current when it is produced.
          await container.run(plan, {
            stdout: (c) => current?.channel(plan.stdoutChannel).write(c),
            stderr: (c) => current?.channel(plan.stderrChannel).write(c),
            started: (pid) => current?.emit(EVENTS.started, pid ? { pid } : {}),
            exited: (exitCode) => {
              current?.channel(plan.stdoutChannel).end();
              current?.channel(plan.stderrChannel).end();
              current?.emit(EVENTS.exited, { exitCode });
            },
          });
          return {};
        }
        case METHODS.stop:
          await container.stop(parse(ContainerStopSchema, params).graceSeconds);
          return {};
        case METHODS.status:
          return container.status();
        default:
          throw Object.assign(new Error(`unknown method "${method}"`), { code: 'UNSUPPORTED' });
      }
    });
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
