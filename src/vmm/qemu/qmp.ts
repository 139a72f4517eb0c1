import type { Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { errors } from '../../errors/catalogue.js';
import { connectWhenReady } from '../../util/unix-socket.js';

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  callerError: Error;
}

/**
 * A QMP client: newline-delimited JSON over a Unix socket. Commands are matched to
 * replies by id; asynchronous events are emitted as 'event'. Pending commands are
 * rejected together when the socket closes.
 */
export class QmpClient extends EventEmitter<{ event: [string, unknown]; close: [] }> {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private greeted!: () => void;
  private notGreeted!: (e: Error) => void;
  private readonly greeting = new Promise<void>((resolve, reject) => {
    this.greeted = resolve;
    this.notGreeted = reject;
  });
  private closed = false;

  private constructor(private readonly sock: Socket) {
    super();
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', () => {});
    sock.on('close', () => this.onClose());
  }

  /** Connects (retrying while QEMU creates the socket) and negotiates capabilities. */
  static async connect(path: string, timeoutMs: number, alive: () => boolean): Promise<QmpClient> {
    let sock: Socket;
    try {
      sock = await connectWhenReady(path, timeoutMs, alive);
    } catch (e) {
      if (!alive()) throw errors.vmmFailed('QEMU exited before its control socket came up', e);
      throw errors.vmmFailed(`QEMU's control socket ${path} did not come up within ${timeoutMs} ms`, e);
    }
    const qmp = new QmpClient(sock);
    await qmp.greeting;
    await qmp.execute('qmp_capabilities');
    return qmp;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const callerError = new Error(command);
    if (this.closed) return Promise.reject(errors.vmmFailed(`QMP is closed; cannot run "${command}"`));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, callerError });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if ('QMP' in msg) this.greeted();
      else if ('event' in msg) this.emit('event', String(msg.event), msg.data);
      else if ('id' in msg) this.onReply(String(msg.id), msg);
    }
  }

  private onReply(id: string, msg: Record<string, unknown>): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if ('error' in msg) {
      const e = msg.error as { class?: string; desc?: string };
      const err = errors.qmp(p.command, e.class ?? 'GenericError', e.desc ?? 'unknown error');
      err.stack = `${err.stack?.split('\n')[0]}\n${p.callerError.stack?.split('\n').slice(1).join('\n')}`;
      p.reject(err);
    } else p.resolve(msg.return);
  }

  private onClose(): void {
    this.closed = true;
    this.notGreeted(errors.vmmFailed('QEMU closed its control socket before greeting'));
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      // "quit" is answered by the socket closing as QEMU exits.
      if (p.command === 'quit') p.resolve({});
      else p.reject(errors.vmmFailed(`QEMU closed its control socket during "${p.command}"`));
    }
    this.emit('close');
  }
}
