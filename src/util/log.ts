import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Renders one pino JSON record as "[HH:MM:SS.mmm] LEVEL: msg {extra}". Pure. */
export function formatRecord(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line);
  } catch {
    return line;
  }
  const { level, time, msg, ...extra } = rec;
  const t = new Date(Number(time)).toISOString().slice(11, 23);
  const rest = Object.keys(extra).length > 0 ? ` ${JSON.stringify(extra)}` : '';
  return `[${t}] ${LEVEL_NAMES[Number(level)] ?? level}: ${String(msg ?? '')}${rest}\n`;
}

/**
 * The host logger: human-readable lines with timestamps on stderr, written synchronously
 * so nothing is lost at exit. The level comes from --log-level or FCVM_LOG.
 */
export function createLogger(level: LogLevel = 'warn', write: (s: string) => void = (s) => process.stderr.write(s)): Logger {
  return pino({ level, base: undefined }, { write: (line: string) => write(formatRecord(line)) });
}

/** The level asked for by the environment, or undefined. */
export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel | undefined {
  const v = env.FCVM_LOG?.toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(v ?? '') ? (v as LogLevel) : undefined;
}

/** A logger that drops everything, for library callers and tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
