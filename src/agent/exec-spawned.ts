import { closeSync, fchownSync } from 'node:fs';
import tty from 'node:tty';
import { ptyOps } from '../os/libc.js';
import type { ExecStart } from '../protocol/api.js';
import { ExecSpawner, type SpawnedStdio } from './exec-spawner.js';
import { containerProcess, execProcessSpec, exitReporter, log, pump, signalMarked, type ExecSink, type ExecTarget, type OciProcess, type RunningExec } from './exec-common.js';

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
export function viaSpawner(req: ExecStart, target: ExecTarget): target is ExecTarget & { id: string } {
  return req.target === 'container' && !req.user && target.id !== undefined;
}

/** An exec through the container's spawner; undefined when it cannot take it (crun or podman then do). */
export async function startWithSpawner(id: string, req: ExecStart, target: ExecTarget & { id: string }, sink: ExecSink): Promise<RunningExec | undefined> {
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
  pump(stdio.stdout, sink.stdout, sink.pressure);
  pump(stdio.stderr, sink.stderr, sink.pressure);
  stdio.stdin?.on('error', () => {});
  exited = exitReporter([stdio.stdout, stdio.stderr], sink);
  return {
    id,
    stdin: stdio.stdin,
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
  pump(output, sink.stdout, sink.pressure);
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
    stdin: input,
    endStdin: () => void input.write(Buffer.from([4])),
    resize: (cols, rows) => pty.setWindowSize(master, cols, rows),
    signal: (sig) => signalMarked(id, sig, undefined),
  };
}
