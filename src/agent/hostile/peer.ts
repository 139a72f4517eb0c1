import { openSync, read, writeSync } from 'node:fs';
import { decodeMessage, encodeFrame, encodeMessage, FrameDecoder, FrameKind, type Frame } from '../../protocol/codec.js';

export interface HostRequest {
  id: number;
  method: string;
  params: Record<string, unknown>;
}

/**
 * The guest end of the agent port, driven by hand: a hostile agent reads and writes raw
 * frames, answers what it likes, and can stop reading altogether.
 */
export class RawPeer {
  private readonly fd: number;
  private readonly decoder = new FrameDecoder();
  private readonly requests: HostRequest[] = [];
  private waiter: (() => void) | undefined;
  private reading = true;
  private helloSeen = false;

  constructor(path: string) {
    this.fd = openSync(path, 'r+');
    void this.readLoop();
  }

  /** Stops reading the port: the host's writes pile up on its side. */
  stopReading(): void {
    this.reading = false;
  }

  /** Writes bytes as they are, blocking until the host takes them. */
  raw(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
  }

  send(message: unknown): void {
    this.raw(encodeMessage(message));
  }

  data(channel: number, payload: Uint8Array): void {
    this.raw(encodeFrame({ kind: FrameKind.Data, channel, payload }));
  }

  end(channel: number): void {
    this.raw(encodeFrame({ kind: FrameKind.End, channel, payload: new Uint8Array(0) }));
  }

  /** Waits for the host's hello and answers it as a real agent would. */
  async handshake(features: string[] = []): Promise<void> {
    while (!this.helloSeen) await this.wake();
    this.send({ t: 'hello', version: 1, role: 'agent', features, bootId: 'hostile' });
  }

  /** The next request from the host (with `method`, if given: others are skipped). */
  async request(method?: string): Promise<HostRequest> {
    for (;;) {
      const i = this.requests.findIndex((r) => method === undefined || r.method === method);
      if (i >= 0) return this.requests.splice(i, 1)[0]!;
      await this.wake();
    }
  }

  answer(req: HostRequest, result: unknown = {}): void {
    this.send({ t: 'res', id: req.id, ok: true, result });
  }

  private wake(): Promise<void> {
    return new Promise((r) => (this.waiter = r));
  }

  private async readLoop(): Promise<void> {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      if (!this.reading) return;
      const n = await new Promise<number>((resolve) => read(this.fd, buf, 0, buf.length, null, (err, n) => resolve(err ? -1 : n)));
      if (n <= 0) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      for (const f of this.decoder.push(Buffer.from(buf.subarray(0, n)))) this.onFrame(f);
      const w = this.waiter;
      this.waiter = undefined;
      w?.();
    }
  }

  private onFrame(f: Frame): void {
    if (f.kind !== FrameKind.Message) return;
    const m = decodeMessage(f) as { t?: string; id?: number; method?: string; params?: Record<string, unknown> };
    if (m.t === 'hello') this.helloSeen = true;
    if (m.t === 'req') this.requests.push({ id: m.id!, method: m.method!, params: m.params ?? {} });
  }
}
