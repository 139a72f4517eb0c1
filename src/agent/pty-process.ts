import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import tty from 'node:tty';
import { ptyOps } from '../os/libc.js';

/** A process whose stdin, stdout and stderr are the slave side of a new pseudo-terminal. */
export interface PtyProcess {
  child: ChildProcess;
  /** The terminal's output; it ends (EIO) once the last slave user is gone. */
  output: NodeJS.ReadableStream;
  /** The terminal's input (the master). */
  input: tty.WriteStream;
  /** A ^D: end of input for a terminal in canonical mode. */
  endInput(): void;
  resize(cols: number, rows: number): void;
}

/**
 * Starts `argv` on a new PTY of `cols` x `rows`. With `raw`, the guest's side only
 * carries bytes (podman run/exec -t put a real terminal inside the container). The
 * caller prefixes `setsid -c` when the PTY must be the controlling terminal, so that
 * resizes reach the process as SIGWINCH.
 */
export async function spawnOnPty(argv: string[], opts: { env: NodeJS.ProcessEnv; cwd: string; cols: number; rows: number; raw: boolean }): Promise<PtyProcess> {
  const pty = await ptyOps();
  const { fd, slavePath } = pty.openMaster();
  pty.setWindowSize(fd, opts.cols, opts.rows);
  const slave = openSync(slavePath, 'r+');
  if (opts.raw) pty.makeRaw(slave);
  const child = spawn(argv[0]!, argv.slice(1), { env: opts.env, cwd: opts.cwd, stdio: [slave, slave, slave] });
  closeSync(slave);
  const output = new tty.ReadStream(fd);
  // Reading the master fails with EIO once the last slave user is gone: that is its end.
  output.on('error', () => output.destroy());
  const input = new tty.WriteStream(fd);
  input.on('error', () => {});
  return {
    child,
    output,
    input,
    endInput: () => void input.write(Buffer.from([4])),
    resize: (cols, rows) => pty.setWindowSize(fd, cols, rows),
  };
}
