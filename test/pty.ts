import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import tty from 'node:tty';
import { ptyOps } from '../src/os/libc.js';

/** A program running on a real pseudo-terminal, driven like a person at a keyboard. */
export interface PtySession {
  child: ChildProcess;
  output(): string;
  write(s: string): void;
  resize(cols: number, rows: number): void;
  /** Resolves when the output (since `from`) matches `re`. */
  expect(re: RegExp, ms: number, from?: number): Promise<void>;
  exited: Promise<number | null>;
  /** How it ended: its exit code, or the signal that killed it. */
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The terminal goes away (its window closed, an ssh session dropped): the master closes. */
  hangUp(): void;
  close(): void;
}

export async function spawnOnPty(cmd: string, args: string[], cols = 80, rows = 24): Promise<PtySession> {
  const pty = await ptyOps();
  const { fd, slavePath } = pty.openMaster();
  pty.setWindowSize(fd, cols, rows);
  const slave = openSync(slavePath, 'r+');
  const child = spawn('setsid', ['-c', cmd, ...args], { stdio: [slave, slave, slave] });
  closeSync(slave);
  let out = '';
  const master = new tty.ReadStream(fd);
  master.setEncoding('utf8');
  master.on('data', (d: string) => (out += d));
  master.on('error', () => {});
  const writer = new tty.WriteStream(fd);
  writer.on('error', () => {});
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const exited = ended.then((e) => e.code);
  return {
    child,
    output: () => out,
    write: (s) => writer.write(s),
    resize: (c, r) => pty.setWindowSize(fd, c, r),
    expect: async (re, ms, from = 0) => {
      const end = Date.now() + ms;
      while (!re.test(out.slice(from))) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re} in terminal output:\n${JSON.stringify(out.slice(-600))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    exited,
    ended,
    hangUp: () => {
      master.destroy();
      writer.destroy();
    },
    close: () => {
      child.kill('SIGKILL');
      master.destroy();
    },
  };
}
