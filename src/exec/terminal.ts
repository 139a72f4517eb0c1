import { spawnSync } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { ReadStream, WriteStream } from 'node:tty';
import { onStdioError } from '../util/stdio-errors.js';

/** The local side of an attached session: fcvm's own stdin and stdout. */
export type LocalStdin = Readable & Partial<Pick<ReadStream, 'isTTY' | 'setRawMode'>>;
export type LocalStdout = Writable & Partial<Pick<WriteStream, 'columns' | 'rows'>>;

/** The local terminal's size, when stdout is one. */
export function terminalSize(stdout: LocalStdout): { cols: number; rows: number } | undefined {
  return stdout.columns ? { cols: stdout.columns, rows: stdout.rows ?? 24 } : undefined;
}

/**
 * Puts a local terminal in raw mode, so every key (Ctrl-C included) goes to the remote
 * terminal, and follows its size. Returns the undo; does nothing when stdin is no terminal.
 */
export function attachTerminal(stdin: LocalStdin, stdout: LocalStdout, resize: (cols: number, rows: number) => void): () => void {
  if (!stdin.isTTY || !stdin.setRawMode) return () => {};
  stdin.setRawMode(true);
  // libuv's raw mode keeps output processing (ONLCR): the remote terminal's "\r\n" would
  // reach the screen as "\r\r\n". Raw as podman's (cfmakeraw) is without it; leaving raw
  // mode restores the terminal's own settings, this one included.
  spawnSync('stty', ['-opost'], { stdio: [(stdin as { fd?: number }).fd ?? 0, 'ignore', 'ignore'] });
  const undoResize = followResizes(stdout, resize);
  return () => {
    undoResize();
    try {
      stdin.setRawMode?.(false);
    } catch {
      // The terminal hung up (EIO): there is no mode left to restore.
    }
  };
}

/** Calls `resize` whenever the local terminal changes size. Returns the undo. */
export function followResizes(stdout: LocalStdout, resize: (cols: number, rows: number) => void): () => void {
  const onResize = () => {
    const size = terminalSize(stdout);
    if (size) resize(size.cols, size.rows);
  };
  stdout.on('resize', onResize);
  return () => void stdout.off('resize', onResize);
}

/** How full the link under a sink may get before reading stdin waits. */
export interface StdinPressure {
  highWater: number;
  backlog(): number;
  onceDrained(cb: () => void): void;
}

/**
 * Forwards stdin into `sink`, ending it at EOF; with `pressure`, reading waits while the
 * link holds more than its high water mark. Returns the undo, which also stops reading.
 */
export function forwardStdin(stdin: Readable, sink: { write(d: Buffer): void; end(): void }, pressure?: StdinPressure): () => void {
  const onData = (d: Buffer) => {
    sink.write(d);
    if (pressure && pressure.backlog() > pressure.highWater) {
      stdin.pause();
      pressure.onceDrained(() => stdin.resume());
    }
  };
  const onEnd = () => sink.end();
  // A read error (EIO: the terminal hung up) is the reader going away, never a crash.
  if (!stdin.listeners('error').includes(onStdioError)) stdin.on('error', onStdioError);
  stdin.on('data', onData);
  stdin.on('end', onEnd);
  return () => {
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdin.pause();
  };
}
