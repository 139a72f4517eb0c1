import { readdirSync, readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { ExecStart } from '../protocol/api.js';

/** What both ways of starting an exec (exec.ts, exec-spawned.ts) share. */
export const log = (msg: string) => process.stdout.write(`fcvm-agent: ${msg}\n`);

/** Where an exec's output goes and how its end is reported. */
export interface ExecSink {
  stdout: (chunk: Buffer) => void;
  stderr: (chunk: Buffer) => void;
  /** Called once, after all output was handed to stdout/stderr. */
  exited: (code: number) => void;
  /** Whether the link to the host holds too much already, and a call once it has taken it. */
  pressure?: OutputPressure;
}

export interface OutputPressure {
  full(): boolean;
  onceDrained(cb: () => void): void;
}

/**
 * Hands a process's output to `write` (a sink's stdout or stderr), pausing it while the
 * link to the host holds more than it should. The process then blocks on its pipe, as a
 * container's does under conmon when nobody reads, instead of the agent holding its
 * output: a host reader that stopped reading once filled the guest's memory, and the
 * OOM killer took the agent and with it the VM.
 */
export function pump(output: Readable | NodeJS.ReadableStream, write: (chunk: Buffer) => void, pressure: OutputPressure | undefined): void {
  output.on('data', (chunk: Buffer) => {
    write(chunk);
    if (!pressure?.full() || output.isPaused()) return;
    output.pause();
    pressure.onceDrained(() => output.resume());
  });
}

export interface RunningExec {
  id: string;
  /** Its stdin (its terminal's, with a TTY), if it takes input. */
  stdin: Writable | undefined;
  endStdin(): void;
  resize(cols: number, rows: number): void;
  /** Signals the remote process and everything it started. */
  signal(sig: NodeJS.Signals): void;
}

/** Environment marker that lets the agent find every process an exec started. */
export const MARK = 'FCVM_EXEC_ID';

/** The container an exec runs in: podman's name, and its full ID once known. */
export interface ExecTarget {
  name: string;
  id: string | undefined;
  /** Its init's PID in the guest, once known. */
  pid?: number | undefined;
}

/** Where podman's crun keeps its container state (rootful), and podman its containers' OCI configs. */
export const CRUN_ROOT = '/run/crun';
export const containerConfig = (id: string) => `/var/lib/containers/storage/overlay-containers/${id}/userdata/config.json`;

/** The part of an OCI runtime spec's `process` that an exec changes. */
export interface OciProcess {
  args: string[];
  env?: string[];
  cwd?: string;
  terminal?: boolean;
  [k: string]: unknown;
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

/** The container's own process spec, as podman gave it to crun; undefined if unreadable. */
export function containerProcess(id: string): OciProcess | undefined {
  try {
    return (JSON.parse(readFileSync(containerConfig(id), 'utf8')) as { process?: OciProcess }).process;
  } catch {
    return undefined;
  }
}

/**
 * Reports the exit code once the process has exited (the returned function) and its
 * output streams have ended.
 */
export function exitReporter(streams: NodeJS.ReadableStream[], sink: ExecSink): (code: number, output?: 'wait' | 'gone') => void {
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

/** Signals every process that carries exec `id`'s marker, but `except`. */
export function signalMarked(id: string, sig: NodeJS.Signals, except: number | undefined): void {
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
