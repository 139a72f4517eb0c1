/**
 * Firecracker's API as its OpenAPI document describes it (src/firecracker/swagger/
 * firecracker.yaml, 1.17.0-dev; fields that later releases added are tagged with the
 * release), written as strict schemas, and an HTTP server on a Unix socket that checks
 * every request against them and answers as Firecracker does: 204 for a good PUT or
 * PATCH, 400 with a fault_message for a bad one (Firecracker's structs reject unknown
 * fields). It never boots anything: it proves that what fcvm sends is what the document
 * accepts, request by request. For tests only.
 */
import { createServer, type Server } from 'node:http';
import * as z from 'zod/mini';
import { atLeast, parseVersion, SINCE, type Version } from '../version.js';

const uint = () => z.int().check(z.nonnegative());
const TokenBucket = z.strictObject({ size: uint(), one_time_burst: z.optional(uint()), refill_time: uint() });
const RateLimiter = z.strictObject({ bandwidth: z.optional(TokenBucket), ops: z.optional(TokenBucket) });

/** The definitions fcvm uses, for a given Firecracker version. */
export function definitions(v: Version) {
  const since = (s: Version) => atLeast(v, s);
  return {
    MachineConfiguration: z.strictObject({
      vcpu_count: z.int().check(z.minimum(1), z.maximum(32)),
      mem_size_mib: uint(),
      smt: z.optional(z.boolean()),
      track_dirty_pages: z.optional(z.boolean()),
      cpu_template: z.optional(z.enum(['C3', 'T2', 'T2S', 'T2CL', 'T2A', 'V1N1', 'None'])),
      ...(since(SINCE.hugePages) ? { huge_pages: z.optional(z.enum(['None', 'Transparent', '2M'])) } : {}),
    }),
    BootSource: z.strictObject({ kernel_image_path: z.string(), boot_args: z.optional(z.string()), initrd_path: z.optional(z.string()) }),
    Drive: z.strictObject({
      drive_id: z.string(),
      is_root_device: z.boolean(),
      partuuid: z.optional(z.string()),
      cache_type: z.optional(z.enum(['Unsafe', 'Writeback'])),
      is_read_only: z.optional(z.boolean()),
      path_on_host: z.optional(z.string()),
      rate_limiter: z.optional(RateLimiter),
      io_engine: z.optional(z.enum(['Sync', 'Async'])),
      socket: z.optional(z.string()),
    }),
    NetworkInterface: z.strictObject({
      iface_id: z.string(),
      host_dev_name: z.string(),
      guest_mac: z.optional(z.string()),
      rx_rate_limiter: z.optional(RateLimiter),
      tx_rate_limiter: z.optional(RateLimiter),
      ...(since(SINCE.nicMtu) ? { mtu: z.optional(z.int().check(z.minimum(68), z.maximum(65535))) } : {}),
    }),
    Vsock: z.strictObject({ guest_cid: z.int().check(z.minimum(3)), uds_path: z.string(), vsock_id: z.optional(z.string()) }),
    EntropyDevice: z.strictObject({ rate_limiter: z.optional(RateLimiter) }),
    InstanceActionInfo: z.strictObject({ action_type: z.enum(['FlushMetrics', 'InstanceStart', 'SendCtrlAltDel']) }),
    Vm: z.strictObject({ state: z.enum(['Paused', 'Resumed']) }),
    SnapshotCreateParams: z.strictObject({ mem_file_path: z.string(), snapshot_path: z.string(), snapshot_type: z.optional(z.enum(['Full', 'Diff'])) }),
    SnapshotLoadParams: z.strictObject({
      snapshot_path: z.string(),
      enable_diff_snapshots: z.optional(z.boolean()),
      mem_file_path: z.optional(z.string()),
      mem_backend: z.optional(z.strictObject({ backend_type: z.enum(['File', 'Uffd']), backend_path: z.string() })),
      resume_vm: z.optional(z.boolean()),
      ...(since(SINCE.snapshotTrackDirtyPages) ? { track_dirty_pages: z.optional(z.boolean()) } : {}),
      ...(since(SINCE.networkOverrides) ? { network_overrides: z.optional(z.array(z.strictObject({ iface_id: z.string(), host_dev_name: z.string() }))) } : {}),
      ...(since(SINCE.vsockOverride) ? { vsock_override: z.optional(z.strictObject({ uds_path: z.string() })) } : {}),
      ...(since(SINCE.clockRealtime) ? { clock_realtime: z.optional(z.boolean()) } : {}),
    }),
  };
}

type Schema = { safeParse: (v: unknown) => { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } } };

interface Route {
  method: string;
  path: RegExp;
  schema?: Schema;
  /** The path parameter must equal this body field (Firecracker checks that too). */
  idField?: string;
  /** What the document says besides the schema (exactly one memory source, for one). */
  check?: (body: Record<string, unknown>) => string | undefined;
}

function routes(v: Version): Route[] {
  const d = definitions(v);
  return [
    { method: 'GET', path: /^\/version$/ },
    { method: 'GET', path: /^\/$/ },
    { method: 'PUT', path: /^\/machine-config$/, schema: d.MachineConfiguration },
    { method: 'PUT', path: /^\/boot-source$/, schema: d.BootSource },
    { method: 'PUT', path: /^\/drives\/([^/]+)$/, schema: d.Drive, idField: 'drive_id' },
    { method: 'PUT', path: /^\/network-interfaces\/([^/]+)$/, schema: d.NetworkInterface, idField: 'iface_id' },
    { method: 'PUT', path: /^\/vsock$/, schema: d.Vsock },
    ...(atLeast(v, SINCE.entropyDevice) ? [{ method: 'PUT', path: /^\/entropy$/, schema: d.EntropyDevice }] : []),
    { method: 'PUT', path: /^\/actions$/, schema: d.InstanceActionInfo },
    { method: 'PATCH', path: /^\/vm$/, schema: d.Vm },
    { method: 'PUT', path: /^\/snapshot\/create$/, schema: d.SnapshotCreateParams },
    {
      method: 'PUT', path: /^\/snapshot\/load$/, schema: d.SnapshotLoadParams,
      check: (b) => ((b.mem_backend === undefined) === (b.mem_file_path === undefined) ? 'Exactly one of mem_backend and mem_file_path must be present' : undefined),
    },
  ];
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** Why the request broke the contract, or undefined if it did not. */
  violation: string | undefined;
}

export interface ContractServerOptions {
  /** What GET /version answers. */
  version: string;
  /** Requests ("PUT /vsock") answered with this fault_message, as a failing Firecracker would. */
  faults?: Record<string, string>;
  /** Requests that get no answer at all (a hung VMM). */
  hang?: string[];
}

export interface ContractServer {
  requests: RecordedRequest[];
  /** The requests that broke the contract. */
  violations(): RecordedRequest[];
  close(): Promise<void>;
}

/** Serves the documented API on `socketPath`, checking every request. */
export async function startContractServer(socketPath: string, opts: ContractServerOptions): Promise<ContractServer> {
  const v = parseVersion(opts.version);
  if (!v) throw new Error(`bad version ${opts.version}`);
  const table = routes(v);
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const key = `${req.method} ${req.url}`;
      const rec: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: undefined, violation: undefined };
      requests.push(rec);
      const fault = (status: number, message: string) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ fault_message: message }));
      };
      if (opts.hang?.includes(key)) return;
      const route = table.find((r) => r.method === req.method && r.path.test(req.url ?? ''));
      if (!route) {
        rec.violation = `no such endpoint in Firecracker ${opts.version}: ${key}`;
        return fault(400, `Invalid request method and/or path: ${req.method} ${req.url}.`);
      }
      if (req.headers['transfer-encoding']) rec.violation = 'chunked bodies are not accepted; send a Content-Length';
      if (text.length > 0) {
        try {
          rec.body = JSON.parse(text);
        } catch {
          rec.violation = 'the body is not JSON';
          return fault(400, 'An error occurred when deserializing the json body of a request: expected value at line 1 column 1.');
        }
        if (req.headers['content-type'] !== 'application/json') rec.violation ??= 'the body is not sent as application/json';
      }
      if (route.schema) {
        const r = route.schema.safeParse(rec.body);
        if (!r.success) {
          const i = r.error!.issues[0]!;
          rec.violation = `${key}: ${i.path.join('.') || '(body)'}: ${i.message}`;
          return fault(400, `An error occurred when deserializing the json body of a request: ${i.message} at ${i.path.join('.')}.`);
        }
        const m = route.idField ? (req.url ?? '').match(route.path) : null;
        if (m && decodeURIComponent(m[1]!) !== (rec.body as Record<string, unknown>)[route.idField!]) {
          rec.violation = `${key}: the path's id differs from ${route.idField}`;
          return fault(400, 'The id from the path does not match the id from the body!');
        }
        const extra = route.check?.(rec.body as Record<string, unknown>);
        if (extra) {
          rec.violation = `${key}: ${extra}`;
          return fault(400, extra);
        }
      }
      if (opts.faults?.[key]) return fault(400, opts.faults[key]!);
      if (req.method === 'GET' && req.url === '/version') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(JSON.stringify({ firecracker_version: opts.version }));
      }
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    requests,
    violations: () => requests.filter((r) => r.violation !== undefined),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
