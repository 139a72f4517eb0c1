/**
 * Runs inside a real fcvm guest with vsock_loopback loaded (test/integration/vsock-guest):
 * the agent's AF_VSOCK listener (VsockLink) and the host's resumable session meet over
 * CID 1, the protocol runs on top, and the connection is cut and resumed. Prints one
 * JSON line with what happened.
 */
import type { Socket } from 'node:net';
import { VsockLink } from '../../src/agent/vsock-link.js';
import { socketFromFd } from '../../src/os/fd-stream.js';
import { VMADDR_CID_LOCAL, vsockOps } from '../../src/os/vsock.js';
import { Connection } from '../../src/protocol/connection.js';
import { FEATURES } from '../../src/protocol/messages.js';
import { openResumable } from '../../src/protocol/resumable-link.js';
import { socketTransport } from '../../src/protocol/transport.js';

const PORT = 47000;

async function probe(): Promise<Record<string, unknown>> {
  let sessions = 0;
  const link = new VsockLink(PORT, (t) => {
    sessions++;
    const agent = new Connection(t, { role: 'agent', features: FEATURES, bootId: 'probe' });
    agent.onRequest((method, params) => ({ method, params }));
    agent.handshake().catch(() => {});
  });
  let sock: Socket | undefined;
  let connects = 0;
  const connect = async () => {
    connects++;
    sock = socketFromFd(vsockOps().connect(VMADDR_CID_LOCAL, PORT));
    sock.on('error', () => {});
    return socketTransport(sock);
  };
  const host = new Connection(await openResumable({ connect, alive: () => true, resumeTimeoutMs: 5000 }), { role: 'host', features: FEATURES });
  await host.handshake(5000);
  const first = await host.request('echo', { n: 1 }, 5000);
  // A cut like a snapshot's vsock reset: the session must resume on a new connection.
  sock!.destroy();
  const second = await host.request('echo', { n: 2 }, 5000);
  host.close();
  link.stop();
  return { node: process.version, first, second, sessions, connects };
}

/** The process entry: prints one JSON line, `ok` with what happened or the error; returns the exit code. */
async function main(): Promise<number> {
  try {
    process.stdout.write(JSON.stringify({ ok: true, ...(await probe()) }) + '\n');
    return 0;
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: String((e as Error).stack ?? e) }) + '\n');
    return 1;
  }
}

// process.exit, not exitCode: the process ends once the line is out, whatever it still holds.
process.exit(await main());
