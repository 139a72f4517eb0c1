/**
 * Runs `fn` with an AbortSignal that aborts on SIGINT, SIGTERM or SIGHUP (the reason is
 * the signal's name). While it runs, those signals do not kill fcvm: the work decides
 * how to wind down. A second signal is left to the work's own handling.
 */
export async function withInterrupts<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const handler = (sig: NodeJS.Signals) => {
    if (!ac.signal.aborted) ac.abort(sig);
  };
  for (const s of sigs) process.on(s, handler);
  try {
    return await fn(ac.signal);
  } finally {
    for (const s of sigs) process.off(s, handler);
  }
}
