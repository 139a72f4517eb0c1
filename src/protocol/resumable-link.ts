import { randomBytes } from 'node:crypto';
import { decodeHello, encodeHello, FLAG_NEW, FLAG_RESUMED, ResumableSession, type Hello } from './resumable.js';
import type { Transport } from './transport.js';

/**
 * Reads the peer's hello from a fresh link and calls `take` with it and the bytes
 * behind it, synchronously from the data callback: whoever takes the link over must
 * start listening at once, or bytes would fall between the two listeners.
 */
function readHello(link: Transport, timeoutMs: number, take: (hello: Hello, rest: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (f: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      f();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`no resumable-stream hello within ${timeoutMs} ms`))), timeoutMs);
    link.onData((c) => {
      if (done) return;
      buf = Buffer.concat([buf, c]);
      let h: ReturnType<typeof decodeHello>;
      try {
        h = decodeHello(buf);
      } catch (e) {
        return finish(() => reject(e));
      }
      if (!h) return;
      finish(() => {
        try {
          take(h.hello, h.rest);
          resolve();
        } catch (e) {
          reject(e);
        }
      });
    });
    link.onClose(() => finish(() => reject(new Error('the link closed during the hello'))));
  });
}

export interface ResumableClientOptions {
  /** Opens a new link to the peer (a hybrid vsock connection, say). */
  connect: () => Promise<Transport>;
  /** Keep trying to resume while this is true (the VM is running). */
  alive: () => boolean;
  /** How long a lost session may take to resume before it is given up. */
  resumeTimeoutMs: number;
  helloTimeoutMs?: number;
  /** Told each time the link was lost and the session resumed. */
  onResumed?: () => void;
}

/**
 * The host end: a new session over a first link, resumed over new links whenever the
 * link is lost, until the peer is gone or does not know the session any more.
 */
export async function openResumable(o: ResumableClientOptions): Promise<Transport> {
  let session!: ResumableSession;
  let resuming = false;
  const establish = async (first: boolean): Promise<void> => {
    const link = await o.connect();
    link.write(encodeHello({ sessionId: session.sessionId, received: session.receivedBytes, flags: first ? FLAG_NEW : 0 }));
    try {
      await readHello(link, o.helloTimeoutMs ?? 5000, (hello, rest) => {
        if (!first && !(hello.flags & FLAG_RESUMED)) throw Object.assign(new Error('the guest no longer knows this session'), { fatal: true });
        session.attach(link, hello.received, rest);
      });
    } catch (e) {
      link.close();
      throw e;
    }
  };
  const resume = async () => {
    if (resuming || session.isClosed) return;
    resuming = true;
    const until = Date.now() + o.resumeTimeoutMs;
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      try {
        await establish(false);
        resuming = false;
        o.onResumed?.();
        return;
      } catch (e) {
        if ((e as { fatal?: boolean }).fatal || !o.alive() || Date.now() > until) {
          resuming = false;
          return session.close();
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };
  session = new ResumableSession(randomBytes(16), { onLinkLost: () => void resume() });
  await establish(true);
  return session.transport;
}

/**
 * The guest end: each new link says which session it carries. A known one is resumed;
 * an unknown one starts a new session (a new host), which ends the previous one.
 */
export class ResumableListener {
  private current: ResumableSession | undefined;

  constructor(
    private readonly onSession: (t: Transport) => void,
    private readonly helloTimeoutMs = 5000,
  ) {}

  async accept(link: Transport): Promise<void> {
    let started: ResumableSession | undefined;
    try {
      await readHello(link, this.helloTimeoutMs, (hello, rest) => {
        const cur = this.current;
        if (cur && !cur.isClosed && cur.sessionId.equals(hello.sessionId)) {
          link.write(encodeHello({ sessionId: cur.sessionId, received: cur.receivedBytes, flags: FLAG_RESUMED }));
          cur.attach(link, hello.received, rest);
          return;
        }
        // A host that wants to resume a session this side does not have must start anew.
        if (!(hello.flags & FLAG_NEW)) {
          link.write(encodeHello({ sessionId: hello.sessionId, received: 0, flags: 0 }));
          throw new Error('unknown session');
        }
        cur?.close();
        const s = new ResumableSession(hello.sessionId);
        this.current = s;
        link.write(encodeHello({ sessionId: s.sessionId, received: 0, flags: 0 }));
        s.attach(link, 0, rest);
        started = s;
      });
    } catch {
      return link.close();
    }
    if (started) this.onSession(started.transport);
  }
}
