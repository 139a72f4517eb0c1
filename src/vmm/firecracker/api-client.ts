import { Agent, request as httpRequest } from 'node:http';
import { errors } from '../../errors/catalogue.js';
import { faultError } from './fault.js';
import type { ApiRequest } from './requests.js';

/** How long a request may take by default; snapshots get longer (they write all of memory). */
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface ApiResponse {
  status: number;
  body: unknown;
}

/**
 * Firecracker's API: HTTP/1.1 on its --api-sock Unix socket, through Node's own HTTP
 * client (one kept-alive connection; Firecracker handles one request at a time).
 * 2xx answers resolve; a 4xx/5xx with a fault_message becomes an error from the
 * catalogue; no answer within the timeout is an error too, never a hang.
 */
export class FirecrackerApi {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(readonly socketPath: string) {}

  async send(req: ApiRequest, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<unknown> {
    const what = `${req.method} ${req.path}`;
    const callerError = new Error(what);
    const res = await this.raw(req, timeoutMs).catch((e: Error & { code?: string }) => {
      if (e.name === 'TimeoutError') throw errors.vmmFailed(`Firecracker did not answer ${what} within ${timeoutMs / 1000}s`, e);
      throw errors.vmmFailed(`cannot reach Firecracker's API socket for ${what} (${e.code ?? e.message})`, e);
    });
    if (res.status >= 200 && res.status < 300) return res.body;
    const fault = typeof res.body === 'object' && res.body !== null && typeof (res.body as { fault_message?: unknown }).fault_message === 'string'
      ? (res.body as { fault_message: string }).fault_message
      : `HTTP ${res.status}`;
    const err = faultError(what, res.status, fault);
    err.stack = `${err.stack?.split('\n')[0]}\n${callerError.stack?.split('\n').slice(1).join('\n')}`;
    throw err;
  }

  /** One request and its answer, whatever the status. */
  raw(req: ApiRequest, timeoutMs: number): Promise<ApiResponse> {
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    return new Promise((resolve, reject) => {
      const r = httpRequest({
        socketPath: this.socketPath,
        agent: this.agent,
        method: req.method,
        path: req.path,
        // Firecracker's HTTP server wants a Content-Length (no chunked bodies).
        headers: { Accept: 'application/json', ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}) },
        signal: AbortSignal.timeout(timeoutMs),
      }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          // A VMM's error text is short; do not hold whatever a broken one sends.
          if (size <= 1 << 20) chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      });
      r.on('error', (e) => reject(e.name === 'AbortError' ? Object.assign(new Error('timed out'), { name: 'TimeoutError' }) : e));
      r.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
