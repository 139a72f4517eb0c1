import { constants } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import tty from 'node:tty';
import type { ExecStart } from '../protocol/api.js';
import { ptyOps } from '../os/libc.js';

/** Where an exec's output goes and how its end is reported. */
export interface ExecSink {
  stdout: (chunk: Buffer) => void;
  stderr: (chunk: Buffer) => void;
  /** Called once, after all output was handed to stdout/stderr. */
  exited: (code: number) => void;
}

export interface RunningExec {
  id: string;
  writeStdin(chunk: Buffer): void;
  endStdin(): void;
  resize(cols: number, rows: number): void;
  /** Signals the remote process and everything it started. */
  signal(sig: NodeJS.Signals): void;
}

/** Environment marker that lets the agent find every process an exec started. */
const MARK = 'FCVM_EXEC_ID';

/** The argument vector of an exec. Pure. */
export function execArgv(req: ExecStart, containerName: string, execId: string): string[] {
  if (req.target === 'vm') {
    const cmd = req.user ? ['runuser', '-u', req.user, '--', ...req.command] : req.command;
    return req.tty ? ['setsid', '-c', ...cmd] : cmd;
  }
  const args = ['podman', 'exec'];
  if (req.stdinChannel !== undefined || req.tty) args.push('--interactive');
  if (req.tty) args.push('--tty');
  for (const [k, v] of Object.entries(req.env)) args.push('--env', `${k}=${v}`);
  args.push('--env', `${MARK}=${execId}`);
  if (req.workdir) args.push('--workdir', req.workdir);
  if (req.user) args.push('--user', req.user);
  args.push(containerName, ...req.command);
  return req.tty ? ['setsid', '-c', ...args] : args;
}

/** Starts an exec; its end is reported through `sink.exited`. */
export async function startExec(req: ExecStart, containerName: string, sink: ExecSink): Promise<RunningExec> {
  const id = randomBytes(6).toString('hex');
  const argv = execArgv(req, containerName, id);
  // In the guest OS the marker goes in the process's own environment; for the container
  // it is passed with --env only, so podman and conmon do not carry it.
  const env = { ...process.env, ...(req.target === 'vm' ? { ...req.env, [MARK]: id } : {}), ...(req.tty ? { TERM: req.env.TERM ?? 'xterm' } : {}) };
  const cwd = req.target === 'vm' ? req.workdir ?? '/' : '/';
  return req.tty ? startWithPty(id, argv, env, cwd, req, sink) : startWithPipes(id, argv, env, cwd, req, sink);
}

function startWithPipes(id: string, argv: string[], env: NodeJS.ProcessEnv, cwd: string, req: ExecStart, sink: ExecSink): RunningExec {
  const child = spawn(argv[0]!, argv.slice(1), { env, cwd, stdio: [req.stdinChannel !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.on('data', sink.stdout);
  child.stderr!.on('data', sink.stderr);
  child.stdin?.on('error', () => {});
  reportExit(child, [child.stdout!, child.stderr!], sink);
  return {
    id,
    writeStdin: (c) => child.stdin?.write(c),
    endStdin: () => child.stdin?.end(),
    resize: () => {},
    signal: (sig) => killExec(id, child, sig, req.target),
  };
}

async function startWithPty(id: string, argv: string[], env: NodeJS.ProcessEnv, cwd: string, req: ExecStart, sink: ExecSink): Promise<RunningExec> {
  const pty = await ptyOps();
  const { fd, slavePath } = pty.openMaster();
  pty.setWindowSize(fd, req.cols ?? 80, req.rows ?? 24);
  const slave = openSync(slavePath, 'r+');
  // podman exec -t runs the real terminal inside the container; ours only carries bytes.
  if (req.target === 'container') pty.makeRaw(slave);
  // setsid -c makes the PTY the controlling terminal, so resizes reach the process as SIGWINCH.
  const child = spawn(argv[0]!, argv.slice(1), { env, cwd, stdio: [slave, slave, slave] });
  closeSync(slave);
  const master = new tty.ReadStream(fd);
  master.on('data', (d: Buffer) => sink.stdout(d));
  // Reading the master fails with EIO once the last slave user is gone: that is its end.
  master.on('error', () => master.destroy());
  reportExit(child, [master], sink);
  const out = new tty.WriteStream(fd);
  out.on('error', () => {});
  return {
    id,
    writeStdin: (c) => out.write(c),
    endStdin: () => out.write(Buffer.from([4])),
    resize: (cols, rows) => pty.setWindowSize(fd, cols, rows),
    signal: (sig) => killExec(id, child, sig, req.target),
  };
}

/** Reports the exit code once the process has exited and its output streams have ended. */
function reportExit(child: ChildProcess, streams: NodeJS.ReadableStream[], sink: ExecSink): void {
  let open = streams.length;
  let code: number | undefined;
  let reported = false;
  const done = () => {
    if (reported || open > 0 || code === undefined) return;
    reported = true;
    sink.exited(code);
  };
  for (const s of streams) {
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      open--;
      done();
    };
    s.on('end', end);
    s.on('close', end);
  }
  child.on('error', (e) => {
    sink.stderr(Buffer.from(`fcvm-agent: ${e.message}\n`));
    code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126;
    open = 0;
    done();
  });
  child.on('exit', (c, sig) => {
    code = c ?? 128 + (sig ? constants.signals[sig] ?? 0 : 0);
    // A background process may hold the output open; give it a moment, then stop waiting.
    setTimeout(() => {
      open = 0;
      done();
    }, 2000).unref();
    done();
  });
}

/**
 * Signals what an exec started. In the container that is every process carrying the
 * exec's marker; `podman exec` itself is left to report how they ended (signalled, it
 * would exit 0 and hide that), unless the signal is SIGKILL. In the guest OS it is the
 * exec's process group.
 */
function killExec(id: string, child: ChildProcess, sig: NodeJS.Signals, target: ExecStart['target']): void {
  if (target === 'vm' || sig === 'SIGKILL') {
    try {
      if (child.pid) process.kill(-child.pid, sig);
    } catch {
      child.kill(sig);
    }
  }
  for (const pid of pidsWithMarker(id)) {
    if (pid === child.pid) continue;
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  }
}

function pidsWithMarker(id: string): number[] {
  const needle = `${MARK}=${id}\0`;
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').includes(needle)) pids.push(Number(d));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}
