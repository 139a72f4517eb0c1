import { constants } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, readFileSync, rmSync, watch } from 'node:fs';
import net from 'node:net';
import type { Writable } from 'node:stream';
import { dirname } from 'node:path';
import type { ContainerRun, ContainerState, Healthcheck } from '../protocol/api.js';
import { applyHealthOverride, healthcheckFrom, type DockerHealthcheck } from '../protocol/healthcheck.js';
import { CIDFILE, PIDFILE, podmanRunArgs, type HostEntries } from './podman-args.js';
import { loadArchive, pullImage, runQuiet } from './image.js';
import { spawnOnPty } from './pty-process.js';
import { startHealthchecks } from './health.js';
import { fdSocketOps } from '../os/fd-socket.js';
import { pump, type OutputPressure } from './exec-common.js';

export interface ContainerSink {
  stdout: (chunk: Buffer) => void;
  stderr: (chunk: Buffer) => void;
  /** `healthcheck`: health checks run, and report through `health`. */
  started: (pid: number | undefined, healthcheck: boolean) => void;
  health: (status: 'healthy' | 'unhealthy', output: string) => void;
  exited: (code: number) => void;
  pressure?: OutputPressure;
}

/** The one container of this VM: prepares its image, runs it with podman, reports its life. */
export class Container {
  private state: ContainerState = { state: 'none' };
  private proc: ChildProcess | undefined;
  /** Started by `podman run --detach`: no podman process stays with the container. */
  private detached = false;
  private name = '';
  private input: { sock: Writable; end: () => void; resize: (cols: number, rows: number) => void } | undefined;

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
  /** `hosts`: the names the container's /etc/hosts gets besides podman's own. */
  async run(plan: ContainerRun, sink: ContainerSink, hosts: HostEntries = {}): Promise<void> {
    if (this.state.state !== 'none') throw Object.assign(new Error('a container already runs in this VM'), { code: 'BUSY' });
    this.state = { state: 'preparing' };
    this.name = plan.name;
    let ref: string;
    try {
      ref = plan.image.kind === 'archive' ? await loadArchive(plan.image.diskSerial, plan.image.id, plan.image.name) : await pullImage(plan.image);
    } catch (e) {
      this.state = { state: 'none' };
      throw e;
    } finally {
      // The registry's secrets were for the pull only: nothing the container keeps refers to them.
      if (plan.image.kind === 'pull') plan.image = { kind: 'pull', ref: plan.image.ref };
    }
    rmSync(PIDFILE, { force: true });
    rmSync(CIDFILE, { force: true });
    // A pulled image's HEALTHCHECK is known only here, once it is pulled.
    const healthcheck = plan.healthcheck ?? (plan.imageHealth ? await imageHealthcheck(ref, plan.imageHealth) : undefined);
    let stopHealth = () => {};
    const started = () => {
      let pid: number | undefined;
      try {
        pid = Number(readFileSync(PIDFILE, 'utf8').trim()) || undefined;
      } catch {
        // podman wrote no PID file: the start is still podman's word
      }
      if (this.state.state === 'preparing') this.state = { state: 'running', ...(pid ? { pid } : {}) };
      sink.started(pid, healthcheck !== undefined);
      if (healthcheck) stopHealth = startHealthchecks(healthcheck, plan.name, sink.health);
    };
    // Without a terminal, `podman run --detach --log-driver=passthrough` returns once the
    // container runs (its exit status is the start's answer) and hands the container
    // this process's pipes: output needs no podman in between, and an idle container
    // has no podman process that wakes up several times a second (an attached `podman
    // run` cost an idle guest about 2% of a vCPU). With a terminal, podman relays it.
    this.detached = !plan.tty;
    const argv = ['podman', ...podmanRunArgs(plan, ref, { detached: this.detached, hosts })];
    const watcher = this.detached ? { close: () => {} } : watchForFile(PIDFILE, started);
    let p: ChildProcess;
    let outputs: NodeJS.ReadableStream[];
    if (plan.tty) {
      // podman run -t puts a real terminal in the container and relays it through this
      // PTY, which only carries bytes; as its controlling terminal it brings resizes.
      const pty = await spawnOnPty(['setsid', '-c', ...argv], { env: { ...process.env, TERM: 'xterm' }, cwd: '/', cols: plan.cols ?? 80, rows: plan.rows ?? 24, raw: true });
      p = pty.child;
      outputs = [pty.output];
      pump(pty.output, sink.stdout, sink.pressure);
      this.input = { sock: pty.input, end: () => pty.endInput(), resize: (cols, rows) => pty.resize(cols, rows) };
    } else {
      // stdin (-i) is a socket of this agent's own, not the child's: `podman run --detach`
      // exits once the container runs, and Node destroys a child's stdin when the child
      // exits, though the container goes on reading the other end (input was lost so).
      // stdin, stdout and stderr are pipes, as conmon gives a container: Node's 'pipe' is a
      // socket, on which /dev/stdout cannot be opened (ENXIO), and nginx's image logs there.
      let stdin: ReturnType<typeof containerStdin> | undefined;
      const pipes: [number, number][] = [];
      try {
        stdin = plan.stdinChannel !== undefined ? containerStdin() : undefined;
        pipes.push(fdSocketOps().pipe(), fdSocketOps().pipe());
        p = spawn(argv[0]!, argv.slice(1), { stdio: [stdin?.theirs ?? 'ignore', pipes[0]![1], pipes[1]![1]] });
      } catch (e) {
        stdin?.ours.destroy();
        for (const [r] of pipes) closeSync(r);
        this.state = { state: 'none' };
        throw e;
      } finally {
        if (stdin) closeSync(stdin.theirs);
        for (const [, w] of pipes) closeSync(w);
      }
      const [out, err] = pipes.map(([r]) => new net.Socket({ fd: r, readable: true, writable: false })) as [net.Socket, net.Socket];
      outputs = [out, err];
      pump(out, sink.stdout, sink.pressure);
      pump(err, sink.stderr, sink.pressure);
      if (stdin) {
        const sock = stdin.ours;
        sock.on('error', () => {});
        this.input = { sock, end: () => void sock.end(), resize: () => {} };
      }
    }
    // On the console, which a start timeout quotes.
    process.stdout.write(`fcvm-agent: image ready; podman run started (pid ${p.pid ?? '?'})\n`);
    this.proc = p;
    let outputsOpen = outputs.length;
    let exitCode: number | undefined;
    let reported = false;
    let running = false;
    const finish = () => {
      if (reported || outputsOpen > 0) return;
      if (exitCode === undefined) {
        // Detached: the pipes close when conmon, which holds them until the container's
        // end, is gone; podman then knows the container's exit status.
        if (!running) return;
        running = false;
        void containerExitCode(plan.name).then((code) => ((exitCode = code), finish()), (e: Error) => {
          sink.stderr(Buffer.from(`fcvm-agent: cannot read the container's exit status: ${e.message}\n`));
          exitCode = 125;
          finish();
        });
        return;
      }
      reported = true;
      watcher.close();
      // The container is gone: input for it has nowhere to go.
      if (!plan.tty) this.input?.sock.destroy();
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
      const status = code ?? 128 + (signal ? constants.signals[signal] ?? 0 : 0);
      if (this.detached && status === 0) {
        running = true;
        started();
        finish();
        return;
      }
      // Attached, podman's status is the container's; detached and non-zero, the start failed (125, 126, 127).
      exitCode = status;
      // A process the container left behind may hold its terminal open: stop waiting for it.
      if (plan.tty) setTimeout(() => ((outputsOpen = 0), finish()), 2000).unref();
      finish();
    });
  }

  /** True once a container started with -i or -t has its process. */
  hasInput(): boolean {
    return this.input !== undefined;
  }

  /** The stdin of a container started with -i (its terminal's, with -t), while it may take input. */
  stdin(): Writable | undefined {
    return this.input?.sock;
  }

  endStdin(): void {
    this.input?.end();
  }

  resize(cols: number, rows: number): void {
    this.input?.resize(cols, rows);
  }

  /** Sends a signal to the container's main process (its PID 1), as podman kill does. */
  kill(signal: string): void {
    if (!(signal in constants.signals)) throw Object.assign(new Error(`no signal ${signal} in this guest`), { code: 'BAD_REQUEST' });
    if (this.state.state !== 'running' || this.state.pid === undefined) throw Object.assign(new Error('the container is not running'), { code: 'FAILED' });
    process.kill(this.state.pid, signal as NodeJS.Signals);
  }

  /** Stops the container: SIGTERM, then SIGKILL after the grace period. */
  async stop(graceSeconds: number): Promise<void> {
    if (this.state.state !== 'running' && this.state.state !== 'preparing') return;
    // If `podman stop` fails or hangs (a stuck lock), kill after the grace: the attached
    // `podman run`, or (detached) the container through podman kill.
    const kill = () => (this.detached && this.state.state === 'running' ? void runQuiet('podman', ['kill', this.name]).catch(() => {}) : this.proc?.kill('SIGKILL'));
    const fallback = setTimeout(kill, (graceSeconds + 5) * 1000);
    await runQuiet('podman', ['stop', '--time', String(Math.ceil(graceSeconds)), this.name]).catch(kill);
    clearTimeout(fallback);
  }
}


/**
 * A pipe for the container's stdin: the agent's (write) end, and the container's (read)
 * end. A pipe, as conmon gives: `cat /dev/stdin` cannot open a socket (ENXIO). Ending
 * the agent's end closes it, which the container reads as EOF.
 */
function containerStdin(): { ours: net.Socket; theirs: number } {
  const [theirs, ours] = fdSocketOps().pipe();
  return { ours: new net.Socket({ fd: ours, readable: false, writable: true }), theirs };
}

/** The exit status of a container that has ended, as podman recorded it. */
async function containerExitCode(name: string): Promise<number> {
  const out = (await runQuiet('podman', ['wait', name])).trim();
  const code = Number(out);
  // -1: conmon killed it (--timeout) and has no status; podman run then exits 255.
  if (code === -1) return 255;
  if (!/^-?\d+$/.test(out) || code < 0) throw new Error(`podman wait said "${out.slice(0, 80)}"`);
  return code;
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

/** The HEALTHCHECK of image `ref` in the guest's podman, with `over`'s fields put over it; undefined for none. */
async function imageHealthcheck(ref: string, over: NonNullable<ContainerRun['imageHealth']>): Promise<Healthcheck | undefined> {
  let found: DockerHealthcheck | null = null;
  try {
    found = JSON.parse(await runQuiet('podman', ['image', 'inspect', '--format', '{{json .HealthCheck}}', ref])) as DockerHealthcheck | null;
  } catch (e) {
    process.stdout.write(`fcvm-agent: cannot read the image's HEALTHCHECK: ${(e as Error).message}\n`);
  }
  return applyHealthOverride(healthcheckFrom(found), over);
}
