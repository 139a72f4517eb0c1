import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fdSocketOps } from '../os/fd-socket.js';
import { CRUN_ROOT } from './exec-common.js';

/** The spawner's binary in the guest (assets/guest/exec-spawner/, built by `fcvm setup`). */
export const GUEST_SPAWNER_PATH = '/run/fcvm/exec-spawner';
/** Most bytes of one request (argv, env, cwd); a bigger exec takes the OCI runtime's path. */
const REQUEST_MAX = 64 * 1024;
const READY_TIMEOUT_MS = 30_000;

/** One exec for the spawner: everything else is the container's own process spec. */
export interface SpawnRequest {
  /** Lower-case hex, as the spawner checks. */
  id: string;
  args: string[];
  env: string[];
  cwd: string;
}

/** The agent's ends of a spawned exec's stdio (sockets, as Node's own child stdio). */
export interface SpawnedStdio {
  stdin: net.Socket | undefined;
  stdout: net.Socket;
  stderr: net.Socket;
}

/** Called once with the exec's exit code (128+N for signal N), and why, when it did not start. */
export type ExitCallback = (code: number, failure?: string) => void;

/**
 * The container's exec spawner (assets/guest/exec-spawner/spawner.c): one process in the
 * container, started once with `crun exec` and the container's own process spec, that
 * forks every later exec. An exec then costs a fork and an execve in the container
 * instead of an OCI runtime's start (namespaces, cgroup, seccomp compiled again), with
 * the same result, since the spawner holds exactly what crun gives an exec.
 *
 * Requests go down a SOCK_SEQPACKET socket, one message each with the exec's three
 * descriptors (SCM_RIGHTS); events come up its stdout, one line each.
 */
export class ExecSpawner {
  private readonly waiting = new Map<string, ExitCallback>();
  private alive = true;

  private constructor(
    private readonly child: ChildProcess,
    private readonly ctl: number,
    readonly ended: Promise<void>,
  ) {}

  /** Starts a spawner in container `containerId` with the container's process spec `base`. */
  static async start(containerId: string, base: object, log: (msg: string) => void): Promise<ExecSpawner> {
    // crun execs args[0] inside the container: the descriptor's magic link needs no path there.
    const spec = `/run/fcvm/exec-spawner-${containerId.slice(0, 12)}.json`;
    writeFileSync(spec, JSON.stringify({ ...base, args: ['/proc/self/fd/3'], terminal: false }));
    try {
      return await ExecSpawner.launch(['crun', '--root', CRUN_ROOT, 'exec', '--preserve-fds', '2', '--process', spec, containerId], GUEST_SPAWNER_PATH, log);
    } finally {
      rmSync(spec, { force: true });
    }
  }

  /**
   * Runs `argv` with the spawner's binary `bin` as fd 3 and the request socket as fd 4;
   * `argv` must end up executing /proc/self/fd/3. Resolves once it says it is ready.
   */
  static launch(argv: string[], bin: string, log: (msg: string) => void): Promise<ExecSpawner> {
    const ops = fdSocketOps();
    let binFd: number;
    try {
      binFd = openSync(bin, 'r');
    } catch (e) {
      return Promise.reject(e as Error);
    }
    let ctl: number, theirs: number;
    try {
      [ctl, theirs] = ops.socketPair('seqpacket', true);
    } catch (e) {
      closeSync(binFd);
      return Promise.reject(e as Error);
    }
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe', binFd, theirs] });
    closeSync(binFd);
    ops.close(theirs);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-2048)));
    child.on('error', () => {});
    const ended = new Promise<void>((resolve) => child.on('close', () => resolve()));
    const spawner = new ExecSpawner(child, ctl, ended);
    return new Promise<ExecSpawner>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the exec spawner did not start within ${READY_TIMEOUT_MS / 1000} s`));
      }, READY_TIMEOUT_MS);
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        if (line !== 'ready') return spawner.event(line, log);
        clearTimeout(timer);
        resolve(spawner);
      });
      void ended.then(() => {
        clearTimeout(timer);
        spawner.close();
        reject(new Error(`the exec spawner ended (${child.exitCode ?? child.signalCode}): ${stderr.trim() || 'no message'}`));
      });
    });
  }

  get usable(): boolean {
    return this.alive;
  }

  /**
   * Starts `req`; `exited` is called once. Its stdio are new sockets (stdin only with
   * `io.stdin`, else /dev/null) whose agent ends come back, or a terminal's slave `io.tty`
   * (the caller keeps the master). Throws when the spawner cannot take it (too big, or
   * gone), having started nothing: the caller then takes another path.
   */
  spawn(req: SpawnRequest, io: { stdin: boolean } | { tty: number }, exited: ExitCallback): SpawnedStdio | undefined {
    const tty = 'tty' in io;
    const fields = [req.id, tty ? 't' : '', req.cwd, String(req.args.length), ...req.args, ...req.env];
    if (!this.alive || !/^[0-9a-f]{1,32}$/.test(req.id) || fields.some((f) => f.includes('\0'))) throw new Error('the exec spawner cannot take this exec');
    const data = Buffer.from(fields.join('\0') + '\0');
    if (data.length > REQUEST_MAX) throw new Error('the exec is too big for the spawner');
    const ops = fdSocketOps();
    if (tty) {
      ops.send(this.ctl, data, [io.tty, io.tty, io.tty]);
      this.waiting.set(req.id, exited);
      return undefined;
    }
    const ours: number[] = [];
    const theirs: number[] = [];
    try {
      // Pipes, as podman exec's are: /dev/stdin and /dev/stdout open on a pipe, not on a socket.
      if (io.stdin) {
        const [r, w] = ops.pipe();
        ours.push(w);
        theirs.push(r);
      } else theirs.push(openSync('/dev/null', 'r'));
      for (let i = 0; i < 2; i++) {
        const [r, w] = ops.pipe();
        ours.push(r);
        theirs.push(w);
      }
      ops.send(this.ctl, data, theirs);
    } catch (e) {
      for (const fd of ours) ops.close(fd);
      throw e;
    } finally {
      for (const fd of theirs) ops.close(fd);
    }
    this.waiting.set(req.id, exited);
    const sock = (fd: number, readable: boolean) => new net.Socket({ fd, readable, writable: !readable, allowHalfOpen: true });
    const [stdout, stderr] = ours.slice(io.stdin ? 1 : 0).map((fd) => sock(fd, true)) as [net.Socket, net.Socket];
    return { stdin: io.stdin ? sock(ours[0]!, false) : undefined, stdout, stderr };
  }

  /** One line from the spawner: an exec's end, or a request it refused. */
  private event(line: string, log: (msg: string) => void): void {
    const m = /^(exited|failed) ([0-9a-f]{1,32}|-) (.{0,400})$/.exec(line);
    const done = m && m[2] !== '-' ? this.waiting.get(m[2]!) : undefined;
    if (!m || !done) {
      log(`exec spawner: ${line.slice(0, 200)}`);
      return;
    }
    this.waiting.delete(m[2]!);
    if (m[1] === 'exited' && /^\d{1,3}$/.test(m[3]!)) done(Number(m[3]));
    else done(126, m[3]);
  }

  /** The spawner is gone: execs it started report SIGKILL's code, as the container's end. */
  private close(): void {
    if (!this.alive) return;
    this.alive = false;
    fdSocketOps().close(this.ctl);
    for (const done of this.waiting.values()) done(137, 'the exec spawner ended');
    this.waiting.clear();
  }

  /** Ends the spawner (its execs go on, unreported). */
  stop(): void {
    this.child.kill('SIGKILL');
  }
}
