import type { Socket } from 'node:net';
import { connectUnix } from '../../util/unix-socket.js';
import { sleep } from '../../util/proc.js';

/** The longest answer line Firecracker sends ("OK 1073741824\n"), with room to spare. */
const MAX_LINE = 64;

/** Why one attempt did not give a connection. */
type Attempt = { ok: true; sock: Socket } | { ok: false; retry: boolean; why: string };

/**
 * One host-initiated connection through Firecracker's hybrid vsock (docs/vsock.md):
 * connect to the vsock's Unix socket, send "CONNECT <port>\n", read "OK <host port>\n".
 * If nothing listens on the guest port, Firecracker closes the connection without an
 * answer. Bytes that came in behind the OK line are handed back to the stream.
 */
async function attempt(udsPath: string, port: number, timeoutMs: number): Promise<Attempt> {
  let sock: Socket;
  try {
    sock = await connectUnix(udsPath);
  } catch (e) {
    return { ok: false, retry: true, why: `cannot connect to ${udsPath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  }
  return new Promise<Attempt>((resolve) => {
    let buf = Buffer.alloc(0);
    const done = (a: Attempt) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.off('error', onError);
      if (!a.ok) sock.destroy();
      resolve(a);
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > MAX_LINE) done({ ok: false, retry: false, why: 'the vsock answered with a line too long to be "OK <port>"' });
        return;
      }
      const line = buf.subarray(0, nl).toString('latin1');
      if (!/^OK \d+$/.test(line)) return done({ ok: false, retry: false, why: `the vsock answered "${line.slice(0, 40)}" instead of "OK <port>"` });
      sock.pause();
      const rest = buf.subarray(nl + 1);
      if (rest.length > 0) sock.unshift(rest);
      done({ ok: true, sock });
    };
    const onClose = () => done({ ok: false, retry: true, why: `nothing listens on guest vsock port ${port} yet` });
    const onError = () => {};
    const timer = setTimeout(() => done({ ok: false, retry: true, why: `no answer to CONNECT ${port} within ${timeoutMs} ms` }), timeoutMs);
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.on('error', onError);
    sock.write(`CONNECT ${port}\n`);
  });
}

export interface HybridVsockOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Stop retrying once this turns false (the VMM exited). */
  alive: () => boolean;
  /** How long one CONNECT may wait for its answer. */
  attemptTimeoutMs?: number;
}

/**
 * Connects to guest vsock `port`, retrying while the VMM has not created its socket or
 * the guest does not listen yet (a booting agent). Resolves with a paused stream that
 * carries only the guest's bytes; rejects with the last reason.
 */
export async function connectHybridVsock(udsPath: string, port: number, opts: HybridVsockOptions): Promise<Socket> {
  const until = Date.now() + opts.timeoutMs;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    const a = await attempt(udsPath, port, opts.attemptTimeoutMs ?? 2000);
    if (a.ok) return a.sock;
    if (!a.retry || !opts.alive() || Date.now() > until) throw Object.assign(new Error(a.why), { code: 'EVSOCKCONNECT' });
    await sleep(delay);
  }
}
