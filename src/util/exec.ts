import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Options, ResultPromise } from 'execa';
import { errors } from '../errors/catalogue.js';

// execa is loaded on first use: it is the costliest module to load, and commands like
// `fcvm exec` and `fcvm ls` never start a host process.
const execa = async () => (await import('execa')).execa;

/**
 * Runs a host command to completion and returns its stdout. A failure becomes a
 * COMMAND_FAILED error that quotes the command and the last line of its stderr.
 */
export async function run(file: string, args: readonly string[], options: Options = {}): Promise<string> {
  try {
    const stdin = options.input === undefined ? { stdin: 'ignore' as const } : {};
    const r = await (await execa())(file, args, { ...stdin, ...options, stripFinalNewline: true });
    return String(r.stdout ?? '');
  } catch (e) {
    const err = e as { stderr?: unknown; shortMessage?: string; code?: string };
    if (err.code === 'ENOENT') {
      throw errors.commandFailed(file, 'not installed', e);
    }
    const stderr = String(err.stderr ?? '').trim().split('\n').filter(Boolean);
    throw errors.commandFailed([file, ...args].join(' ').slice(0, 160), stderr.slice(-1)[0] ?? err.shortMessage ?? (e as Error).message ?? 'failed', e);
  }
}

/**
 * Starts a host command and returns the running process, for streaming. Wrapped in an
 * object: the process is a thenable, which an async function would otherwise await.
 */
export async function start(file: string, args: readonly string[], options: Options = {}): Promise<{ proc: ResultPromise }> {
  return { proc: (await execa())(file, args, options) };
}

/** The path of `file` on PATH, or undefined. */
export async function which(file: string, path = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): Promise<string | undefined> {
  for (const dir of path.split(delimiter)) {
    const p = join(dir, file);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}
