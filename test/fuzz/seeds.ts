import { channelTransport } from '../../src/protocol/channel-transport.js';
import { Connection } from '../../src/protocol/connection.js';
import { FEATURES } from '../../src/protocol/messages.js';
import { SESSION_SYNC } from '../../src/protocol/session-sync.js';
import { memoryTransportPair, type Transport } from '../../src/protocol/transport.js';
import { EVENTS, EXEC, METHODS } from '../../src/protocol/api.js';
import { Op as FuseOp } from '../../src/fuse/abi.js';

/**
 * Real traffic for the fuzz corpus: the bytes a host receives from an agent, recorded
 * from a real host Connection and a real agent Connection running the session a
 * `podman run` and an `fcvm exec` have (handshake, vm.configure, container.run, output
 * on channels, events, a nested exec session inside a channel, and the exit).
 */
export async function recordAgentTraffic(): Promise<Buffer> {
  const [h, a] = memoryTransportPair();
  const recorded: Buffer[] = [];
  const tap: Transport = { ...a, write: (d) => (recorded.push(Buffer.from(d)), a.write(d)) };
  const host = new Connection(h, { role: 'host', features: FEATURES });
  const agent = new Connection(tap, { role: 'agent', features: FEATURES, bootId: '3f0c2a8e-boot' });
  agent.onRequest(async (method, params) => {
    const p = params as Record<string, number>;
    if (method === METHODS.configure) return {};
    if (method === METHODS.run) {
      setTimeout(() => {
        agent.emit(EVENTS.started, { pid: 412 });
        agent.channel(p.stdoutChannel!).write(Buffer.from('hello from the container\n'));
        agent.channel(p.stderrChannel!).write(Buffer.from('a warning\n'));
        agent.emit(EVENTS.health, { status: 'healthy', output: 'ok' });
      }, 1);
      return {};
    }
    if (method === EXEC.openSession) {
      const sub = new Connection(channelTransport(agent.channel(p.channel!)), { role: 'agent', features: FEATURES, bootId: '3f0c2a8e-boot' });
      sub.onRequest((m, q) => {
        const x = q as Record<string, number>;
        if (m !== EXEC.start) throw Object.assign(new Error('no'), { code: 'UNSUPPORTED' });
        setTimeout(() => {
          sub.channel(x.stdoutChannel!).write(Buffer.from('Linux fcvm 6.1.0\n'));
          sub.channel(x.stdoutChannel!).end();
          sub.emit(EXEC.exited, { execId: 'e1', exitCode: 0 });
        }, 1);
        return { execId: 'e1' };
      });
      sub.handshake().catch(() => {});
      return {};
    }
    throw Object.assign(new Error(`unknown method "${method}"`), { code: 'UNSUPPORTED' });
  });
  agent.handshake().catch(() => {});
  await host.handshake(1000);
  const out = host.openChannel();
  const err = host.openChannel();
  await host.request(METHODS.configure, { hostname: 'web1', clockMs: 1 });
  await host.request(METHODS.run, { stdoutChannel: out.id, stderrChannel: err.id });
  await new Promise((r) => setTimeout(r, 10));
  const ch = host.openChannel();
  const sub = new Connection(channelTransport(ch), { role: 'host', features: FEATURES });
  await host.request(EXEC.openSession, { channel: ch.id });
  await sub.handshake(1000);
  const so = sub.openChannel();
  await sub.request(EXEC.start, { target: 'vm', command: ['uname', '-a'], stdoutChannel: so.id });
  await new Promise((r) => setTimeout(r, 10));
  await host.request('no.such.method').catch(() => {});
  agent.channel(out.id).end();
  agent.channel(err.id).end();
  agent.emit(EVENTS.exited, { exitCode: 7 });
  await new Promise((r) => setTimeout(r, 10));
  host.close();
  return Buffer.concat(recorded);
}

/** Seed inputs for a target (see wireOf): the recorded traffic in several chunkings, and framed. */
export async function seedsFor(target: string): Promise<Buffer[]> {
  if (target === 'fuse') return fuseSeeds();
  const traffic = await recordAgentTraffic();
  const body = target === 'resync' ? Buffer.concat([Buffer.from('half a frame of the old session'), SESSION_SYNC, traffic]) : traffic;
  return [0, 2, 6, 12, 14].map((mode) => Buffer.concat([Buffer.from([mode]), body]));
}

/** A record of the FUSE fuzz input (fuse-target.ts): opcode, nodeid, then arguments. */
const rec = (op: number, nodeid: number, ...parts: (Buffer | string | number | bigint)[]) => {
  const args = Buffer.concat(parts.map((p) => {
    if (Buffer.isBuffer(p)) return p;
    if (typeof p === 'string') return Buffer.from(`${p}\0`);
    const b = Buffer.alloc(typeof p === 'bigint' ? 8 : 4);
    if (typeof p === 'bigint') b.writeBigUInt64LE(p);
    else b.writeUInt32LE(p);
    return b;
  }));
  const opIndex = Object.values(FuseOp).filter((v) => typeof v === 'number').indexOf(op);
  return Buffer.concat([Buffer.from([opIndex, nodeid, args.length]), args]);
};

/**
 * What a guest's kernel sends for a session that looks up, reads, creates, writes, lists,
 * follows the symlinks out of the volume and sets an xattr (as Linux 6.1 encodes them).
 */
function fuseSeeds(): Buffer[] {
  const lookups = Buffer.concat([rec(FuseOp.LOOKUP, 1, 'inside'), rec(FuseOp.LOOKUP, 1, 'rel'), rec(FuseOp.LOOKUP, 1, 'abs'), rec(FuseOp.LOOKUP, 1, 'dir')]);
  const read = Buffer.concat([rec(FuseOp.GETATTR, 2, 0, 0, 0n), rec(FuseOp.OPEN, 2, 0, 0), rec(FuseOp.READ, 2, 1n, 0n, 4096, 0, 0n, 0, 0), rec(FuseOp.READLINK, 3)]);
  const write = Buffer.concat([rec(FuseOp.CREATE, 1, 0o102, 0o644, 0o22, 0, 'new'), rec(FuseOp.WRITE, 6, 1n, 0n, 5, 0, 0n, 0, 0, Buffer.from('hello')), rec(FuseOp.SETXATTR, 2, 3, 0, 0, 0, 'user.x', Buffer.from('abc'))]);
  const list = Buffer.concat([rec(FuseOp.OPENDIR, 1, 0, 0), rec(FuseOp.READDIRPLUS, 1, 1n, 0n, 4096, 0, 0n, 0, 0), rec(FuseOp.RENAME2, 1, 1n, 0, 0, 'inside', 'moved'), rec(FuseOp.UNLINK, 1, 'moved')]);
  return [0, 1].flatMap((mode) => [lookups, Buffer.concat([lookups, read]), Buffer.concat([lookups, write]), Buffer.concat([lookups, list])].map((b) => Buffer.concat([Buffer.from([mode]), b])));
}
