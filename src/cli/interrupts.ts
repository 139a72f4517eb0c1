import { readerGone } from '../util/stdio-errors.js';

/**
 * Runs `fn` with an AbortSignal that aborts on SIGINT, SIGTERM or SIGHUP (the reason is
 * the signal's name), and when fcvm's reader goes away: SIGPIPE for a closed pipe
 * (`fcvm exec VM -- seq 1000000 | head -2`), SIGHUP for a terminal that hung up. While
 * it runs, those do not kill fcvm: the work decides how to wind down. A second signal
 * is left to the work's own handling.
 */
export async function withInterrupts<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const handler = (sig: NodeJS.Signals) => {
    if (!ac.signal.aborted) ac.abort(sig);
  };
  for (const s of sigs) process.on(s, handler);
  const stopReading = readerGone((sig) => handler(sig));
  try {
    return await fn(ac.signal);
  } finally {
    for (const s of sigs) process.off(s, handler);
    stopReading();
  }
}
