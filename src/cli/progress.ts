import type { Writable } from 'node:stream';

/**
 * Progress for a person watching a long step. On a terminal, one line that updates in
 * place (`live`), with lasting lines (`say`) printed above it. Elsewhere (a log, a pipe,
 * CI) only the lasting lines, and never the same one twice in a row.
 */
export interface Progress {
  /** A line that stays (a phase began, a step is done). */
  say(line: string): void;
  /** The current state, overwritten by the next one; shown on a terminal only. */
  live(line: string): void;
  /** Clears the live line. */
  done(): void;
}

/** A Progress writing `prefix: ...` lines to `out` (a terminal if `out.isTTY`). */
export function createProgress(out: Writable & { isTTY?: boolean; columns?: number }, prefix: string): Progress {
  const tty = out.isTTY === true;
  let shown = false;
  let last = '';
  const clear = () => {
    if (shown) out.write('\r\x1b[K');
    shown = false;
  };
  return {
    say(line) {
      const text = `${prefix}: ${line}`;
      if (!tty && text === last) return;
      last = text;
      clear();
      out.write(`${text}\n`);
    },
    live(line) {
      if (!tty) return;
      const width = Math.max(20, (out.columns ?? 80) - 1);
      const text = `${prefix}: ${line}`;
      out.write(`\r\x1b[K${text.length > width ? `${text.slice(0, width - 3)}...` : text}`);
      shown = true;
    },
    done: clear,
  };
}
