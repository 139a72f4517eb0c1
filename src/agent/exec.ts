import { constants } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fchownSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import tty from 'node:tty';
import { ptyOps } from '../os/libc.js';
import { randomBytes } from 'node:crypto';
import type { ExecStart } from '../protocol/api.js';
import { spawnOnPty } from './pty-process.js';
import { ExecSpawner, type SpawnedStdio } from './exec-spawner.js';

const log = (msg: string) => process.stdout.write(`fcvm-agent: ${msg}\n`);

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

/** The container an exec runs in: podman's name, and its full ID once known. */
export interface ExecTarget {
  name: string;
  id: string | undefined;
  /** Its init's PID in the guest, once known. */
  pid?: number | undefined;
}

/** Where podman's crun keeps its container state (rootful), and podman its containers' OCI configs. */
export const CRUN_ROOT = '/run/crun';
const containerConfig = (id: string) => `/var/lib/containers/storage/overlay-containers/${id}/userdata/config.json`;

/** The part of an OCI runtime spec's `process` that an exec changes. */
interface OciProcess {
  args: string[];
  env?: string[];
  cwd?: string;
  terminal?: boolean;
  [k: string]: unknown;
}

/** True when a container exec can go straight to the OCI runtime (see execArgv). */
export function viaRuntime(req: ExecStart, target: ExecTarget): target is ExecTarget & { id: string } {
  return req.target === 'container' && !req.tty && !req.user && target.id !== undefined;
}

/**
 * The exec's process spec: the container's own process (user, capabilities, rlimits,
 * no-new-privileges, env) with the command, extra env, marker and workdir. Pure.
 */
export function execProcessSpec(base: OciProcess, req: ExecStart, execId: string): OciProcess {
  // As podman exec: a variable of the exec's replaces the container's of the same name.
  const byName = new Map<string, string>();
  for (const e of [...(base.env ?? []), ...Object.entries(req.env).map(([k, v]) => `${k}=${v}`), `${MARK}=${execId}`]) {
    const eq = e.indexOf('=');
    byName.set(eq < 0 ? e : e.slice(0, eq), e);
  }
  const env = [...byName.values()];
  return { ...base, args: req.command, env, cwd: req.workdir ?? base.cwd ?? '/', terminal: false };
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
  return code;
}

/** The container's own process spec, as podman gave it to crun; undefined if unreadable. */
function containerProcess(id: string): OciProcess | undefined {
  try {
    return (JSON.parse(readFileSync(containerConfig(id), 'utf8')) as { process?: OciProcess }).process;
  } catch {
    return undefined;
  }
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
  if (processFile) {
    // crun reports a command it cannot start as 255; podman (and shells) say 127 or 126.
    let head = '';
    done = {
      ...sink,
      stderr: (c) => ((head = head.length < 4096 ? head + c.toString('utf8') : head), sink.stderr(c)),
      exited: (code) => {
        rmSync(processFile, { force: true });
        sink.exited(runtimeExitCode(code, head));
      },
    };
  }
  return req.tty ? startWithPty(id, argv, env, cwd, req, done) : startWithPipes(id, argv, env, cwd, req, done);
}

/** The container's exec spawner, one per container, started by the first exec or warmExecSpawner. */
let spawnerSlot: { container: string; base: OciProcess; spawner: Promise<ExecSpawner | undefined> } | undefined;

/** Starts the container's exec spawner ahead of its first exec (so clones find it ready). */
export function warmExecSpawner(target: ExecTarget): void {
  if (target.id !== undefined) spawnerFor(target.id);
}

function spawnerFor(container: string): typeof spawnerSlot {
  if (spawnerSlot?.container === container) return spawnerSlot;
  const base = containerProcess(container);
  if (!base) return undefined;
  const spawner = ExecSpawner.start(container, base, log).catch((e: Error) => {
    // Execs still work, each through crun exec as before.
    log(`${e.message}; execs go through crun exec`);
    return undefined;
  });
  spawnerSlot = { container, base, spawner };
  void spawner.then((s) => s?.ended.then(() => spawnerSlot?.spawner === spawner && (spawnerSlot = undefined)));
  return spawnerSlot;
}

/** True when a container exec can go to the exec spawner: any but a named user's. */
function viaSpawner(req: ExecStart, target: ExecTarget): target is ExecTarget & { id: string } {
  return req.target === 'container' && !req.user && target.id !== undefined;
}

/** An exec through the container's spawner; undefined when it cannot take it (crun or podman then do). */
async function startWithSpawner(id: string, req: ExecStart, target: ExecTarget & { id: string }, sink: ExecSink): Promise<RunningExec | undefined> {
  const slot = spawnerFor(target.id);
  const spawner = await slot?.spawner;
  if (!slot || !spawner?.usable) return undefined;
  const spec = execProcessSpec(slot.base, req, id);
  if (req.tty) return spawnOnTerminal(spawner, id, spec, slot.base, req, target, sink);
  let exited: ReturnType<typeof exitReporter> | undefined;
  let stdio: SpawnedStdio;
  try {
    stdio = spawner.spawn(spawnRequest(id, spec), { stdin: req.stdinChannel !== undefined }, (code, failure) => {
      if (failure) sink.stderr(Buffer.from(`fcvm-agent: ${failure}\n`));
      exited!(code, failure ? 'gone' : 'wait');
    })!;
  } catch {
    return undefined;
  }
  stdio.stdout.on('data', sink.stdout);
  stdio.stderr.on('data', sink.stderr);
  stdio.stdin?.on('error', () => {});
  exited = exitReporter([stdio.stdout, stdio.stderr], sink);
  return {
    id,
    writeStdin: (c) => stdio.stdin?.write(c),
    endStdin: () => stdio.stdin?.end(),
    resize: () => {},
    signal: (sig) => signalMarked(id, sig, undefined),
  };
}

const spawnRequest = (id: string, spec: OciProcess) => ({ id, args: spec.args, env: spec.env ?? [], cwd: spec.cwd ?? '/' });

/**
 * A TTY exec through the spawner, as `podman exec -t` makes it: a terminal of the
 * container's own devpts (so `tty` and ttyname name it inside), owned by the process's
 * user, its controlling terminal in a session of its own, TERM set.
 */
async function spawnOnTerminal(spawner: ExecSpawner, id: string, spec: OciProcess, base: OciProcess, req: ExecStart, target: ExecTarget, sink: ExecSink): Promise<RunningExec | undefined> {
  if (!target.pid) return undefined;
  const pty = await ptyOps();
  let pair: { master: number; slave: number };
  try {
    pair = pty.openPair(`/proc/${target.pid}/root/dev/pts/ptmx`);
  } catch (e) {
    log(`no terminal in the container (${(e as Error).message}); this exec takes podman exec`);
    return undefined;
  }
  const { master, slave } = pair;
  const env = spec.env ?? [];
  if (!env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  try {
    const user = base.user as { uid?: number } | undefined;
    fchownSync(slave, user?.uid ?? 0, -1);
    pty.setWindowSize(master, req.cols ?? 80, req.rows ?? 24);
  } catch (e) {
    log(`cannot set up the exec's terminal (${(e as Error).message}); it takes podman exec`);
    closeSync(master);
    closeSync(slave);
    return undefined;
  }
  const output = new tty.ReadStream(master);
  // Reading the master fails with EIO once the last slave user is gone: that is its end.
  output.on('error', () => output.destroy());
  output.on('data', (d: Buffer) => sink.stdout(d));
  const exited = exitReporter([output], sink);
  try {
    spawner.spawn(spawnRequest(id, { ...spec, env }), { tty: slave }, (code, failure) => {
      if (failure) sink.stdout(Buffer.from(`fcvm-agent: ${failure}\r\n`));
      exited(code, failure ? 'gone' : 'wait');
    });
  } catch {
    output.destroy();
    return undefined;
  } finally {
    closeSync(slave);
  }
  const input = new tty.WriteStream(master);
  input.on('error', () => {});
  return {
    id,
    writeStdin: (c) => void input.write(c),
    endStdin: () => void input.write(Buffer.from([4])),
    resize: (cols, rows) => pty.setWindowSize(master, cols, rows),
    signal: (sig) => signalMarked(id, sig, undefined),
  };
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
  // podman exec -t runs the real terminal inside the container; ours only carries bytes.
  // setsid -c makes the PTY the controlling terminal, so resizes reach the process as SIGWINCH.
  const p = await spawnOnPty(argv, { env, cwd, cols: req.cols ?? 80, rows: req.rows ?? 24, raw: req.target === 'container' });
  p.output.on('data', (d: Buffer) => sink.stdout(d));
  reportExit(p.child, [p.output], sink);
  return {
    id,
    writeStdin: (c) => p.write(c),
    endStdin: () => p.endInput(),
    resize: (cols, rows) => p.resize(cols, rows),
    signal: (sig) => killExec(id, p.child, sig, req.target),
  };
}

/**
 * Reports the exit code once the process has exited (the returned function) and its
 * output streams have ended.
 */
function exitReporter(streams: NodeJS.ReadableStream[], sink: ExecSink): (code: number, output?: 'wait' | 'gone') => void {
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
  return (c, output = 'wait') => {
    if (code !== undefined) return;
    code = c;
    if (output === 'gone') open = 0;
    // A background process may hold the output open; give it a moment, then stop waiting.
    setTimeout(() => {
      open = 0;
      done();
    }, 2000).unref();
    done();
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

/** Signals every process that carries exec `id`'s marker, but `except`. */
function signalMarked(id: string, sig: NodeJS.Signals, except: number | undefined): void {
  for (const pid of pidsWithMarker(id)) {
    if (pid === except) continue;
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
