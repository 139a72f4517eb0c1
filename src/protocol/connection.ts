import { EventEmitter } from 'node:events';
import { Channel, FEATURE_WINDOW } from './channel.js';
import { decodeMessage, encodeFrame, encodeMessage, FrameDecoder, FrameKind, PROTOCOL_VERSION, ProtocolError, type Frame } from './codec.js';
import { MessageSchema, type Hello, type Message, type WireError } from './messages.js';
import type { Transport } from './transport.js';

/** A request that the peer answered with an error. `code` is the peer's stable code. */
export class RemoteError extends Error {
  override name = 'RemoteError';
  constructor(
    readonly method: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The connection closed while a request was pending. */
export class ConnectionClosedError extends Error {
  override name = 'ConnectionClosedError';
}

export type RequestHandler = (method: string, params: unknown) => Promise<unknown> | unknown;

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  /** Created where the call was made, so a failure's stack points at the caller. */
  callerError: Error;
  timer?: NodeJS.Timeout;
}

/**
 * What the peer may make this side hold. The host's side faces a guest that may be
 * hostile: root in the guest owns the agent's end. Past a limit the peer has broken the
 * protocol, and the connection closes with a ProtocolError that says which limit.
 */
export interface ConnectionLimits {
  /** Channels the peer may start: ids this side never opened or adopted. */
  peerChannels: number;
  /** Bytes held, over all channels, for listeners that have not come yet (more is dropped). */
  heldBytes: number;
  /** Bytes this side may hold for a peer that does not read before it gives up on it. */
  backlog: number;
}

/** The host's limits: the guest is not trusted. */
export const HOST_LIMITS: ConnectionLimits = { peerChannels: 64, heldBytes: 4 << 20, backlog: 16 << 20 };
/** The agent trusts its host (which opens a channel per session and stream). */
export const AGENT_LIMITS: ConnectionLimits = { peerChannels: 1 << 16, heldBytes: 64 << 20, backlog: Number.POSITIVE_INFINITY };

export interface ConnectionOptions {
  role: 'host' | 'agent';
  features: readonly string[];
  bootId?: string;
  limits?: Partial<ConnectionLimits>;
}

/**
 * The RPC layer: requests with responses, events, and multiplexed byte channels over a
 * Transport. Pending calls are all rejected together when the connection closes.
 */
export class Connection {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly channels = new Map<number, Channel>();
  private readonly events = new EventEmitter();
  private nextId = 1;
  private nextChannel: number;
  private handler: RequestHandler | undefined;
  private closeError: Error | undefined;
  private isClosed = false;
  private helloWaiter: { resolve: (h: Hello) => void; reject: (e: Error) => void } | undefined;
  private peerHello: Hello | undefined;
  private readonly limits: ConnectionLimits;
  private readonly held: { used: number; max: number };
  /** Open channels that the peer started (ids this side never opened). */
  private readonly peerChannels = new Set<number>();
  private inputHolds = 0;
  readonly closed: Promise<Error | undefined>;
  private resolveClosed!: (e: Error | undefined) => void;

  constructor(
    private readonly transport: Transport,
    private readonly options: ConnectionOptions,
  ) {
    // Host-opened channels are odd, agent-opened are even, so they never collide.
    this.nextChannel = options.role === 'host' ? 1 : 2;
    this.limits = { ...(options.role === 'host' ? HOST_LIMITS : AGENT_LIMITS), ...options.limits };
    this.held = { used: 0, max: this.limits.heldBytes };
    this.closed = new Promise((r) => (this.resolveClosed = r));
    transport.onData((chunk) => this.onBytes(chunk));
    transport.onClose((err) => this.shutdown(err ?? new ConnectionClosedError('connection closed')));
  }

  /** The features both sides support, after the handshake. */
  get features(): string[] {
    const peer = this.peerHello?.features ?? [];
    return this.options.features.filter((f) => peer.includes(f));
  }

  get peer(): Hello | undefined {
    return this.peerHello;
  }

  /**
   * Exchange hello messages. The host speaks first; the agent answers. Resolves with
   * the peer's hello once versions match.
   */
  handshake(timeoutMs = 0): Promise<Hello> {
    const callerError = new Error();
    const p = new Promise<Hello>((resolve, reject) => {
      this.helloWaiter = { resolve, reject };
      if (this.peerHello) resolve(this.peerHello);
    });
    if (this.options.role === 'host') this.sendHello();
    if (timeoutMs <= 0) return p;
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        callerError.message = `no hello from the peer within ${timeoutMs} ms`;
        callerError.name = 'TimeoutError';
        reject(callerError);
      }, timeoutMs);
      timer.unref();
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  onRequest(handler: RequestHandler): void {
    this.handler = handler;
  }

  onEvent(cb: (name: string, data: unknown) => void): () => void {
    this.events.on('event', cb);
    return () => this.events.off('event', cb);
  }

  /** Sends a request and resolves with the peer's result. */
  request<T = unknown>(method: string, params: unknown = {}, timeoutMs = 0): Promise<T> {
    const callerError = new Error(`request ${method}`);
    if (this.isClosed) {
      callerError.message = `cannot send "${method}": ${this.closeError?.message ?? 'connection closed'}`;
      return Promise.reject(Object.assign(callerError, { name: 'ConnectionClosedError' }));
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { method, resolve: resolve as (v: unknown) => void, reject, callerError };
      if (timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          this.pending.delete(id);
          callerError.name = 'TimeoutError';
          callerError.message = `"${method}" got no answer within ${timeoutMs} ms`;
          reject(callerError);
        }, timeoutMs);
      }
      this.pending.set(id, pending);
      this.send({ t: 'req', id, method, params });
    });
  }

  emit(name: string, data: unknown = {}): void {
    this.send({ t: 'ev', name, data });
  }

  /** A new channel id owned by this side. */
  openChannel(): Channel {
    const id = this.nextChannel;
    this.nextChannel += 2;
    return this.channel(id);
  }

  /**
   * A channel that an earlier session opened (a restored container's output): taken
   * over, and never handed out again by `openChannel`.
   */
  adoptChannel(id: number): Channel {
    while (this.nextChannel <= id) this.nextChannel += 2;
    return this.channel(id);
  }

  /** The channel with this id (created on first use). */
  channel(id: number): Channel {
    let ch = this.channels.get(id);
    if (!ch) {
      ch = new Channel(id, this, this.held);
      this.channels.set(id, ch);
    }
    return ch;
  }

  releaseChannel(id: number): void {
    this.channels.get(id)?.drop();
    this.channels.delete(id);
    this.peerChannels.delete(id);
  }

  /**
   * The channel a frame from the peer names, or undefined if its bytes are to be
   * dropped: a channel this side opened and has released since (late bytes). A channel
   * this side never opened counts against the peer's limit.
   */
  private incomingChannel(id: number): Channel | undefined {
    const known = this.channels.get(id);
    if (known) return known;
    const ours = id % 2 === this.nextChannel % 2;
    if (ours && id < this.nextChannel) return undefined;
    if (this.peerChannels.size >= this.limits.peerChannels) {
      throw new ProtocolError(`the peer used more than ${this.limits.peerChannels} channels that this side did not open (channel ${id})`);
    }
    this.peerChannels.add(id);
    return this.channel(id);
  }

  /** Bytes of a frame from the peer whose rest has not come (a peer that stopped mid-frame). */
  get partialFrameBytes(): number {
    return this.decoder.pending;
  }

  /** Whether both sides keep per-channel windows (see channel.ts); undefined before the peer's hello. */
  get windows(): boolean | undefined {
    if (!this.options.features.includes(FEATURE_WINDOW)) return false;
    return this.peerHello ? this.peerHello.features.includes(FEATURE_WINDOW) : undefined;
  }

  /** Bytes written to the peer that it has not taken yet. */
  get backlog(): number {
    return this.transport.backlog?.() ?? 0;
  }

  /** Calls `cb` once the peer has taken what was written to it. */
  onceDrained(cb: () => void): void {
    if (this.transport.onceDrained) this.transport.onceDrained(cb);
    else queueMicrotask(cb);
  }

  /** Stops reading from the peer until released (a peer without windows; else Channel.hold). Counted. */
  holdInput(): () => void {
    if (this.inputHolds++ === 0) this.transport.pause?.();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.inputHolds === 0 && !this.isClosed) this.transport.resume?.();
    };
  }

  /** @internal A channel's Data or End frame. */
  sendFrame(frame: Frame): void {
    if (this.isClosed) return;
    this.write(encodeFrame(frame));
  }

  /** Writes to the peer, unless it holds more than the backlog limit: then it does not read, and is dropped. */
  private write(bytes: Buffer): void {
    this.transport.write(bytes);
    const backlog = this.backlog;
    if (backlog > this.limits.backlog) this.close(new ProtocolError(`the peer stopped reading (${backlog} bytes not taken)`));
  }

  close(err?: Error): void {
    this.transport.close();
    this.shutdown(err ?? new ConnectionClosedError('connection closed'));
  }

  /** Why the connection closed (a ProtocolError if the peer broke the protocol), once it has. */
  get closeReason(): Error | undefined {
    return this.closeError;
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  private send(msg: Message): void {
    if (this.isClosed) return;
    this.write(encodeMessage(msg));
  }

  private sendHello(): void {
    const hello: Hello = { t: 'hello', version: PROTOCOL_VERSION, role: this.options.role, features: [...this.options.features] };
    if (this.options.bootId) hello.bootId = this.options.bootId;
    this.send(hello);
  }

  private onBytes(chunk: Uint8Array): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.close(e as Error);
      return;
    }
    for (const f of frames) {
      try {
        this.onFrame(f);
      } catch (e) {
        this.close(e instanceof ProtocolError ? e : new ProtocolError(String(e)));
        return;
      }
    }
  }

  private onFrame(f: Frame): void {
    if (f.kind === FrameKind.Data) {
      this.incomingChannel(f.channel)?.deliver(Buffer.from(f.payload.buffer, f.payload.byteOffset, f.payload.byteLength));
      return;
    }
    if (f.kind === FrameKind.End) {
      this.incomingChannel(f.channel)?.finish();
      return;
    }
    if (f.kind === FrameKind.Credit) {
      if (f.payload.length !== 4) throw new ProtocolError(`a credit frame of ${f.payload.length} bytes on channel ${f.channel}`);
      // Credit for a channel this side has released (or never had) allows nothing.
      this.channels.get(f.channel)?.credit(Buffer.from(f.payload.buffer, f.payload.byteOffset, 4).readUInt32BE(0));
      return;
    }
    const parsed = MessageSchema.safeParse(decodeMessage(f));
    if (!parsed.success) throw new ProtocolError(`invalid message: ${parsed.error.issues[0]?.message ?? 'unknown'}`);
    const msg = parsed.data;
    switch (msg.t) {
      case 'hello':
        this.onHello(msg);
        return;
      case 'req':
        void this.serve(msg.id, msg.method, msg.params);
        return;
      case 'res': {
        const p = this.pending.get(msg.id);
        if (!p) {
          // A late answer to a call that timed out is harmless; one to a call never made is not.
          if (msg.id >= this.nextId || msg.id < 1) throw new ProtocolError(`an answer to request ${msg.id}, which was never made`);
          return;
        }
        this.pending.delete(msg.id);
        if (p.timer) clearTimeout(p.timer);
        if (msg.ok) p.resolve(msg.result);
        else p.reject(remoteError(p, msg.error));
        return;
      }
      case 'ev':
        this.events.emit('event', msg.name, msg.data);
        return;
    }
  }

  private onHello(h: Hello): void {
    if (this.peerHello) throw new ProtocolError('a second hello in one session');
    if (h.role === this.options.role) throw new ProtocolError(`the peer says it is the ${h.role} too`);
    if (h.version !== PROTOCOL_VERSION) {
      throw new ProtocolError(`peer speaks protocol version ${h.version}, this side ${PROTOCOL_VERSION}`);
    }
    this.peerHello = h;
    if (this.options.role === 'agent') this.sendHello();
    for (const ch of this.channels.values()) ch.peerKnown();
    this.helloWaiter?.resolve(h);
  }

  private async serve(id: number, method: string, params: unknown): Promise<void> {
    try {
      if (!this.handler) throw Object.assign(new Error(`no handler for "${method}"`), { code: 'UNSUPPORTED' });
      const result = await this.handler(method, params);
      this.send({ t: 'res', id, ok: true, result: result ?? null });
    } catch (e) {
      const err = e as Error & { code?: unknown };
      const code = typeof err.code === 'string' ? err.code : 'FAILED';
      this.send({ t: 'res', id, ok: false, error: { code, message: err.message ?? String(e) } });
    }
  }

  private shutdown(err: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeError = err;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (p.timer) clearTimeout(p.timer);
      p.callerError.name = 'ConnectionClosedError';
      p.callerError.message = `"${p.method}" was pending when the connection closed: ${err.message}`;
      p.reject(p.callerError);
    }
    this.helloWaiter?.reject(err);
    for (const ch of this.channels.values()) {
      ch.finish();
      ch.abandon();
    }
    this.resolveClosed(err);
  }
}

function remoteError(p: Pending, e: WireError): RemoteError {
  const err = new RemoteError(p.method, e.code, e.message);
  err.stack = `${err.name}: ${e.message}\n${p.callerError.stack?.split('\n').slice(1).join('\n') ?? ''}`;
  return err;
}
