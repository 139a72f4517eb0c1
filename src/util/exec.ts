import { execa, type Options, type ResultPromise } from 'execa';
import { errors } from '../errors/catalogue.js';

/**
 * Runs a host command to completion and returns its stdout. A failure becomes a
 * COMMAND_FAILED error that quotes the command and the last line of its stderr.
 */
export async function run(file: string, args: readonly string[], options: Options = {}): Promise<string> {
  try {
    const r = await execa(file, args, { stdin: 'ignore', ...options, stripFinalNewline: true });
    return String(r.stdout ?? '');
  } catch (e) {
    const err = e as { stderr?: unknown; shortMessage?: string; code?: string };
    if (err.code === 'ENOENT') {
      throw errors.commandFailed(file, 'not installed', e);
    }
    const stderr = String(err.stderr ?? '').trim().split('\n').filter(Boolean);
    throw errors.commandFailed([file, ...args].join(' ').slice(0, 160), stderr.slice(-1)[0] ?? err.shortMessage ?? 'failed', e);
  }
}

/** Starts a host command and returns the running process, for streaming. */
export function start(file: string, args: readonly string[], options: Options = {}): ResultPromise {
  return execa(file, args, options);
}

/** True if `file` is found on PATH. */
export async function which(file: string): Promise<string | undefined> {
  try {
    const out = await execa('sh', ['-c', `command -v "$1"`, 'sh', file]);
    return out.stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}
