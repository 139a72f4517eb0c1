import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The host logger: human-readable lines with timestamps on stderr, synchronous so that
 * nothing is lost when the process exits. The level comes from --log-level or FCVM_LOG.
 */
export function createLogger(level: LogLevel = 'warn'): Logger {
  const stream = pretty({
    destination: 2,
    sync: true,
    colorize: false,
    translateTime: 'HH:MM:ss.l',
    ignore: 'pid,hostname',
    singleLine: true,
  });
  return pino({ level, base: undefined }, stream);
}

/** The level asked for by the environment, or undefined. */
export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel | undefined {
  const v = env.FCVM_LOG?.toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(v ?? '') ? (v as LogLevel) : undefined;
}

/** A logger that drops everything, for library callers and tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
