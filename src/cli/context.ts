import { errors } from '../errors/catalogue.js';
import { createLogger, levelFromEnv, type LogLevel, type Logger } from '../util/log.js';
import { defaultBaseDir, layoutFor, type Layout } from '../setup/layout.js';

/** Global flags every command sees. */
export interface GlobalFlags {
  baseDir?: string;
  logLevel?: string;
  debug?: boolean;
}

export interface CliContext {
  layout: Layout;
  log: Logger;
  debug: boolean;
}

export function cliContext(flags: GlobalFlags, write?: (s: string) => void): CliContext {
  if (flags.baseDir !== undefined && flags.baseDir.trim() === '') {
    throw errors.invalidOption('--base-dir', flags.baseDir, 'it is empty', 'Give a directory, or leave --base-dir out for the default');
  }
  const level = (flags.logLevel as LogLevel | undefined) ?? levelFromEnv() ?? (flags.debug ? 'debug' : 'warn');
  return {
    layout: layoutFor(flags.baseDir ?? defaultBaseDir()),
    log: createLogger(level, write),
    debug: flags.debug ?? false,
  };
}
