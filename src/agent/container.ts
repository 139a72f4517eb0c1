import { constants } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { ContainerRun, ContainerState } from '../protocol/api.js';
import { CIDFILE, PIDFILE, podmanRunArgs } from './podman-args.js';
import { loadArchive, pullImage, runQuiet } from './image.js';
import { spawnOnPty } from './pty-process.js';
import { startHealthchecks } from './health.js';

export interface ContainerSink {
  stdout: (chunk: Buffer) => void;
  stderr: (chunk: Buffer) => void;
  started: (pid: number | undefined) => void;
  health: (status: 'healthy' | 'unhealthy', output: string) => void;
  exited: (code: number) => void;
}

/** The one container of this VM: prepares its image, runs it with podman, reports its life. */
export class Container {
  private state: ContainerState = { state: 'none' };
  private proc: ChildProcess | undefined;
  private name = '';
  private input: { write: (c: Buffer) => void; end: () => void; resize: (cols: number, rows: number) => void } | undefined;

  status(): ContainerState {
    return { ...this.state };
  }

  /** The container's full ID while it runs (podman writes it before the PID file). */
  id(): string | undefined {
    if (this.state.state !== 'running') return undefined;
    try {
      return readFileSync(CIDFILE, 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** Resolves once podman has been started; life events follow through `sink`. */
  async run(plan: ContainerRun, sink: ContainerSink): Promise<void> {
    if (this.state.state !== 'none') throw Object.assign(new Error('a container already runs in this VM'), { code: 'BUSY' });
    this.state = { state: 'preparing' };
    this.name = plan.name;
    let ref: string;
    try {
      ref = plan.image.kind === 'archive' ? await loadArchive(plan.image.diskSerial, plan.image.id) : await pullImage(plan.image);
    } catch (e) {
      this.state = { state: 'none' };
      throw e;
    } finally {
      // The registry's secrets were for the pull only: nothing the container keeps refers to them.
      if (plan.image.kind === 'pull') plan.image = { kind: 'pull', ref: plan.image.ref };
    }
    rmSync(PIDFILE, { force: true });
    rmSync(CIDFILE, { force: true });
    const watcher = watchForFile(PIDFILE, () => {
      const pid = Number(readFileSync(PIDFILE, 'utf8').trim()) || undefined;
      if (this.state.state === 'preparing') this.state = { state: 'running', ...(pid ? { pid } : {}) };
      sink.started(pid);
      if (plan.healthcheck) stopHealth = startHealthchecks(plan.healthcheck, plan.name, sink.health);
    });
    let stopHealth = () => {};
    const argv = ['podman', ...podmanRunArgs(plan, ref)];
    let p: ChildProcess;
    let outputs: NodeJS.ReadableStream[];
    if (plan.tty) {
      // podman run -t puts a real terminal in the container and relays it through this
      // PTY, which only carries bytes; as its controlling terminal it brings resizes.
      const pty = await spawnOnPty(['setsid', '-c', ...argv], { env: { ...process.env, TERM: 'xterm' }, cwd: '/', cols: plan.cols ?? 80, rows: plan.rows ?? 24, raw: true });
      p = pty.child;
      outputs = [pty.output];
      pty.output.on('data', sink.stdout);
      this.input = { write: (c) => pty.write(c), end: () => pty.endInput(), resize: (cols, rows) => pty.resize(cols, rows) };
    } else {
      p = spawn(argv[0]!, argv.slice(1), { stdio: [plan.stdinChannel !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
      outputs = [p.stdout!, p.stderr!];
      p.stdout!.on('data', sink.stdout);
      p.stderr!.on('data', sink.stderr);
      const stdin = p.stdin;
      stdin?.on('error', () => {});
      if (stdin) this.input = { write: (c) => void stdin.write(c), end: () => void stdin.end(), resize: () => {} };
    }
    // On the console, which a start timeout quotes (a rare start that never happens is being hunted).
    process.stdout.write(`fcvm-agent: image ready; podman run started (pid ${p.pid ?? '?'})\n`);
    this.proc = p;
    let outputsOpen = outputs.length;
    let exitCode: number | undefined;
    let reported = false;
    const finish = () => {
      if (reported || outputsOpen > 0 || exitCode === undefined) return;
      reported = true;
      watcher.close();
      stopHealth();
      this.state = { state: 'exited', exitCode };
      sink.exited(exitCode);
    };
    // Report the exit only after the output is drained, so none is lost.
    for (const o of outputs) {
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        outputsOpen--;
        finish();
      };
      o.on('end', end);
      o.on('close', end);
    }
    p.on('error', (e) => {
      sink.stderr(Buffer.from(`fcvm-agent: cannot start podman: ${e.message}\n`));
      exitCode = 125;
      outputsOpen = 0;
      finish();
    });
    p.on('exit', (code, signal) => {
      exitCode = code ?? 128 + (signal ? constants.signals[signal] ?? 0 : 0);
      // A process the container left behind may hold its terminal open: stop waiting for it.
      if (plan.tty) setTimeout(() => ((outputsOpen = 0), finish()), 2000).unref();
      finish();
    });
  }

  /** True once a container started with -i or -t has its process. */
  hasInput(): boolean {
    return this.input !== undefined;
  }

  /** Input for a container started with -i (and its terminal's, with -t). */
  writeStdin(chunk: Buffer): void {
    this.input?.write(chunk);
  }

  endStdin(): void {
    this.input?.end();
  }

  resize(cols: number, rows: number): void {
    this.input?.resize(cols, rows);
  }

  /** Stops the container: SIGTERM, then SIGKILL after the grace period. */
  async stop(graceSeconds: number): Promise<void> {
    if (this.state.state !== 'running' && this.state.state !== 'preparing') return;
    // If podman itself hangs (a stuck lock), kill the attached `podman run` after the grace.
    const fallback = setTimeout(() => this.proc?.kill('SIGKILL'), (graceSeconds + 5) * 1000);
    await runQuiet('podman', ['stop', '--time', String(Math.ceil(graceSeconds)), this.name]).catch(() => {
      this.proc?.kill('SIGKILL');
    });
    clearTimeout(fallback);
  }
}


/** Calls `cb` once when `path` appears (inotify on its directory). */
function watchForFile(path: string, cb: () => void): { close: () => void } {
  let done = false;
  const fire = () => {
    if (done || !existsSync(path)) return;
    try {
      if (!readFileSync(path, 'utf8').trim()) return;
    } catch {
      return;
    }
    done = true;
    w.close();
    cb();
  };
  const w = watch(dirname(path), fire);
  return { close: () => ((done = true), w.close()) };
}
