import type { MessagePort } from 'node:worker_threads';
import type { ClientStats, MemoryMap } from './served-client.js';

/** What a page-server worker starts with. */
export interface WorkerInit {
  mem: MemoryMap;
  /** The eventfd the main thread signals after posting on `port`. */
  wakeFd: number;
  port: MessagePort;
  /** How long a VMM may take between connecting and sending its mappings. */
  handshakeMs: number;
  /** Bytes placed around each fault (fault-around); one page at least. */
  faultAroundBytes: number;
}

/** Main thread to worker. */
export type ToWorker =
  | { type: 'listen'; id: string; socketPath: string; allowUids: number[]; record: boolean; prefetch: Uint32Array | undefined }
  | { type: 'drop'; id: string }
  | { type: 'stats' }
  | { type: 'stop' };

/** Worker to main thread. */
export type ToMain =
  | { type: 'listening'; id: string }
  | { type: 'listen-failed'; id: string; why: string }
  | { type: 'attached'; id: string; pid: number; regions: number; bytes: number; pageSize: number }
  | { type: 'refused'; id: string; why: string; pid?: number; killed: boolean }
  | { type: 'gone'; id: string; why: string; stats: ClientStats }
  | { type: 'recorded'; id: string; pages: Uint32Array }
  | { type: 'stats'; cpuNs: number; faults: number; pages: number }
  | { type: 'stopped'; cpuNs: number; faults: number; pages: number };
