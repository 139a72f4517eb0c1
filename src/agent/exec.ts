/**
 * `fcvm exec` in the guest. Three ways in, tried in order:
 * - in the container, the container's exec spawner (exec-spawned.ts): a fork per exec;
 * - in the container without the spawner, `crun exec --process` with the container's
 *   own process spec; with `--user` (or a TTY without the spawner), `podman exec`;
 * - in the guest OS (`--vm`), the command itself.
 */
import { constants } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { ExecStart } from '../protocol/api.js';
import { spawnOnPty } from './pty-process.js';
import { CRUN_ROOT, containerProcess, execProcessSpec, exitReporter, MARK, pump, signalMarked, type ExecSink, type ExecTarget, type RunningExec } from './exec-common.js';
import { startWithSpawner, viaSpawner } from './exec-spawned.js';

export { execProcessSpec, type ExecSink, type ExecTarget, type RunningExec } from './exec-common.js';
export { warmExecSpawner } from './exec-spawned.js';

/** True when a container exec can go straight to the OCI runtime (see execArgv). */
export function viaRuntime(req: ExecStart, target: ExecTarget): target is ExecTarget & { id: string } {
  return req.target === 'container' && !req.tty && !req.user && target.id !== undefined;
}

/**
 * The argument vector of an exec. Pure. A plain exec in the container goes straight to
 * the OCI runtime, `crun exec --process SPEC` with the spec above, as podman itself
 * would run it, skipping podman's own start-up (~0.6 s under emulation). TTYs and
 * named users keep `podman exec`, which sets up a console socket and resolves the user
 * in the container's /etc/passwd.
 */
export function execArgv(req: ExecStart, target: ExecTarget, execId: string, processFile?: string): string[] {
  if (req.target === 'vm') {
    const cmd = req.user ? ['runuser', '-u', req.user, '--', ...req.command] : req.command;
    return req.tty ? ['setsid', '-c', ...cmd] : cmd;
  }
  if (processFile && viaRuntime(req, target)) return ['crun', '--root', CRUN_ROOT, 'exec', '--process', processFile, target.id];
  const args = ['podman', 'exec'];
  if (req.stdinChannel !== undefined || req.tty) args.push('--interactive');
  if (req.tty) args.push('--tty');
  for (const [k, v] of Object.entries(req.env)) args.push('--env', `${k}=${v}`);
  args.push('--env', `${MARK}=${execId}`);
  if (req.workdir) args.push('--workdir', req.workdir);
  if (req.user) args.push('--user', req.user);
  args.push(target.name, ...req.command);
  return req.tty ? ['setsid', '-c', ...args] : args;
}

/** The exit code podman would give for `crun exec`'s `code`, judged by its stderr. Pure. */
export function runtimeExitCode(code: number, stderr: string): number {
  if (code !== 255) return code;
  if (/^executable file `.*` not found in \$PATH/m.test(stderr)) return 127;
  if (/^(exec container process|open executable).*Permission denied/m.test(stderr)) return 126;
  // podman exec --user with a user the container does not have: podman run says 126.
  if (/^Error: unable to find user /m.test(stderr)) return 126;
  return code;
}

/** Writes the exec's process spec for crun, or returns undefined to use podman exec. */
function writeProcessFile(req: ExecStart, target: ExecTarget, execId: string): string | undefined {
  if (!viaRuntime(req, target)) return undefined;
  try {
    const base = containerProcess(target.id);
    if (!base) return undefined;
    const file = `/run/fcvm/exec-${execId}.json`;
    writeFileSync(file, JSON.stringify(execProcessSpec(base, req, execId)));
    return file;
  } catch {
    return undefined;
  }
}

/** Starts an exec; its end is reported through `sink.exited`. */
export async function startExec(req: ExecStart, target: ExecTarget, sink: ExecSink): Promise<RunningExec> {
  const id = randomBytes(6).toString('hex');
  const spawned = viaSpawner(req, target) ? await startWithSpawner(id, req, target, sink) : undefined;
  if (spawned) return spawned;
  const processFile = writeProcessFile(req, target, id);
  const argv = execArgv(req, target, id, processFile);
  // In the guest OS the marker goes in the process's own environment; for the container
  // it is passed with --env only, so podman and conmon do not carry it.
  const env = { ...process.env, ...(req.target === 'vm' ? { ...req.env, [MARK]: id } : {}), ...(req.tty ? { TERM: req.env.TERM ?? 'xterm' } : {}) };
  const cwd = req.target === 'vm' ? req.workdir ?? '/' : '/';
  let done = sink;
  if (req.target === 'container') {
    // crun (and podman exec, for a user it cannot find) report a command they cannot
    // start as 255; podman run (and shells) say 127 or 126.
    let head = '';
    done = {
      ...sink,
      stderr: (c) => ((head = head.length < 4096 ? head + c.toString('utf8') : head), sink.stderr(c)),
      exited: (code) => {
        if (processFile) rmSync(processFile, { force: true });
        sink.exited(runtimeExitCode(code, head));
      },
    };
  }
  return req.tty ? startWithPty(id, argv, env, cwd, req, done) : startWithPipes(id, argv, env, cwd, req, done);
}


function startWithPipes(id: string, argv: string[], env: NodeJS.ProcessEnv, cwd: string, req: ExecStart, sink: ExecSink): RunningExec {
  const child = spawn(argv[0]!, argv.slice(1), { env, cwd, stdio: [req.stdinChannel !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
  pump(child.stdout!, sink.stdout, sink.pressure);
  pump(child.stderr!, sink.stderr, sink.pressure);
  child.stdin?.on('error', () => {});
  reportExit(child, [child.stdout!, child.stderr!], sink);
  return {
    id,
    stdin: child.stdin ?? undefined,
    endStdin: () => child.stdin?.end(),
    resize: () => {},
    signal: (sig) => killExec(id, child, sig, req.target),
  };
}

async function startWithPty(id: string, argv: string[], env: NodeJS.ProcessEnv, cwd: string, req: ExecStart, sink: ExecSink): Promise<RunningExec> {
  // podman exec -t runs the real terminal inside the container; ours only carries bytes.
  // setsid -c makes the PTY the controlling terminal, so resizes reach the process as SIGWINCH.
  const p = await spawnOnPty(argv, { env, cwd, cols: req.cols ?? 80, rows: req.rows ?? 24, raw: req.target === 'container' });
  pump(p.output, sink.stdout, sink.pressure);
  reportExit(p.child, [p.output], sink);
  return {
    id,
    stdin: p.input,
    endStdin: () => p.endInput(),
    resize: (cols, rows) => p.resize(cols, rows),
    signal: (sig) => killExec(id, p.child, sig, req.target),
  };
}

/** exitReporter for a child process of the agent's own. */
function reportExit(child: ChildProcess, streams: NodeJS.ReadableStream[], sink: ExecSink): void {
  const exited = exitReporter(streams, sink);
  child.on('error', (e) => {
    sink.stderr(Buffer.from(`fcvm-agent: ${e.message}\n`));
    exited((e as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126, 'gone');
  });
  child.on('exit', (c, sig) => exited(c ?? 128 + (sig ? constants.signals[sig] ?? 0 : 0)));
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
  signalMarked(id, sig, child.pid);
}
