/** Stable error codes. Each one is documented in `catalogue.ts` by the factory that creates it. */
export type ErrorCode =
  | 'USAGE'
  | 'INVALID_NAME'
  | 'INVALID_OPTION'
  | 'NAME_IN_USE'
  | 'VM_NOT_FOUND'
  | 'VM_NOT_READY'
  | 'EXEC_FAILED'
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_PULL_FAILED'
  | 'SETUP_MISSING'
  | 'SETUP_FAILED'
  | 'PREFLIGHT'
  | 'HYPERVISOR_UNAVAILABLE'
  | 'ACCEL_UNAVAILABLE'
  | 'VMM_FAILED'
  | 'VMM_EXITED'
  | 'QMP_ERROR'
  | 'AGENT_TIMEOUT'
  | 'AGENT_ERROR'
  | 'PROTOCOL'
  | 'CONTAINER_FAILED'
  | 'STATE_CORRUPT'
  | 'COMMAND_FAILED'
  | 'INTERRUPTED'
  | 'SNAPSHOT_NOT_FOUND'
  | 'SNAPSHOT_EXISTS'
  | 'SNAPSHOT_REFUSED'
  | 'SNAPSHOT_CORRUPT'
  | 'SNAPSHOT_IN_USE'
  | 'SERVE_NOT_FOUND'
  | 'DISK_FULL'
  | 'READ_ONLY'
  | 'BASE_DIR_DENIED'
  | 'DISK_NO_REFLINK'
  | 'FIRECRACKER_API'
  | 'UNSUPPORTED_OPTION'
  | 'LOG_NOT_FOUND'
  | 'STOP_FAILED'
  | 'VM_RUNNING'
  | 'EXIT_UNKNOWN'
  | 'KILL_FAILED'
  | 'INTERNAL'
  | 'NESTED_UNAVAILABLE'
  | 'COPY_FAILED';

/** Every code, for checking one that crossed a socket. */
export const ERROR_CODES: readonly ErrorCode[] = [
  'USAGE', 'INVALID_NAME', 'INVALID_OPTION', 'NAME_IN_USE', 'VM_NOT_FOUND', 'VM_NOT_READY', 'EXEC_FAILED', 'IMAGE_NOT_FOUND',
  'IMAGE_PULL_FAILED', 'SETUP_MISSING', 'SETUP_FAILED', 'PREFLIGHT', 'HYPERVISOR_UNAVAILABLE', 'ACCEL_UNAVAILABLE', 'VMM_FAILED',
  'VMM_EXITED', 'QMP_ERROR', 'AGENT_TIMEOUT', 'AGENT_ERROR', 'PROTOCOL', 'CONTAINER_FAILED', 'STATE_CORRUPT', 'COMMAND_FAILED',
  'INTERRUPTED', 'SNAPSHOT_NOT_FOUND', 'SNAPSHOT_EXISTS', 'SNAPSHOT_REFUSED', 'SNAPSHOT_CORRUPT', 'SNAPSHOT_IN_USE',
  'SERVE_NOT_FOUND', 'DISK_FULL', 'READ_ONLY', 'BASE_DIR_DENIED', 'DISK_NO_REFLINK', 'FIRECRACKER_API', 'UNSUPPORTED_OPTION', 'LOG_NOT_FOUND', 'STOP_FAILED', 'VM_RUNNING', 'EXIT_UNKNOWN', 'KILL_FAILED',
  'INTERNAL', 'NESTED_UNAVAILABLE', 'COPY_FAILED',
];

/** Exit code for errors of fcvm itself, as podman uses 125 for its own failures. */
export const FCVM_ERROR_EXIT = 125;

export interface FcvmErrorOptions {
  /** What the user should do about it, one sentence. */
  hint?: string;
  cause?: unknown;
  exitCode?: number;
  /** Extra structured detail shown with --debug and in JSON output. */
  detail?: Record<string, unknown>;
}

/**
 * The one error type fcvm raises on purpose. It renders as a single line that names
 * the bad thing (`message`) and says what to do (`hint`).
 */
export class FcvmError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: FcvmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FcvmError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? FCVM_ERROR_EXIT;
    this.detail = options.detail;
  }

  /** The one-line rendering: "message; hint". */
  oneLine(): string {
    const msg = this.message.replace(/\s*\n\s*/g, ' ').trim();
    return this.hint ? `${msg}. ${this.hint}` : msg;
  }
}

export function isFcvmError(e: unknown): e is FcvmError {
  return e instanceof FcvmError;
}
