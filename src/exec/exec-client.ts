import { constants as osConstants } from 'node:os';
import { connectUnix } from '../util/unix-socket.js';
import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { EXEC, ExecExitedSchema, type ExecStart } from '../protocol/api.js';
import type { Channel } from '../protocol/channel.js';
import { Connection, RemoteError } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { socketTransport } from '../protocol/transport.js';
import type { Writable } from 'node:stream';
import { attachTerminal, forwardStdin, terminalSize, type LocalStdin, type LocalStdout } from './terminal.js';
import { onceWritable } from '../util/once-writable.js';
import { readerIsGone } from '../util/stdio-errors.js';

/**
 * How long the agent may take to answer. A guest on a loaded host can be slow (clones
 * translate their code afresh under TCG); one that never answers still ends the exec.
 */
const HANDSHAKE_TIMEOUT_MS = 60_000;

/** How long a command whose reader went away gets for SIGPIPE before SIGKILL. */
const READER_GONE_GRACE_MS = 2000;
/** stdin bytes sent but not yet taken, past which reading stdin waits. */
const STDIN_HIGH_WATER = 1 << 20;

export interface ExecRequest {
  target: 'container' | 'vm';
  command: string[];
  env: Record<string, string>;
  workdir: string | undefined;
  user: string | undefined;
  interactive: boolean;
  tty: boolean;
}

export interface ExecIo {
  /** Timing marks for --log-level debug. */
  mark?: (what: string) => void;
  stdin: LocalStdin;
  stdout: LocalStdout;
  stderr: Writable;
  /** Aborted (reason: the signal's name) when the user signals fcvm. */
  interrupt: AbortSignal;
}

/**
 * Runs a command in a VM through its supervisor's control socket and resolves with the
 * remote exit code. stdout and stderr stay apart (one stream with a TTY), stdin is
 * forwarded with EOF, window resizes follow the local terminal, and a signal to fcvm
 * is passed on to the remote process.
 */
export async function execInVm(socketPath: string, what: string, req: ExecRequest, io: ExecIo): Promise<number> {
  const sock = await connectUnix(socketPath).catch((e: Error) => {
    throw errors.execFailed(what, `cannot reach its supervisor (${e.message})`);
  });
  const mark = io.mark ?? (() => {});
  mark('connected');
  const conn = new Connection(socketTransport(sock), { role: 'host', features: FEATURES });
  const restore: Array<() => void> = [];
  try {
    // The request follows the hello at once: the agent reads them in order, so waiting
    // for its hello first would only add a round trip through the supervisor.
    const handshake = conn.handshake(HANDSHAKE_TIMEOUT_MS).catch((e) => {
      throw errors.execFailed(what, `the guest agent did not answer (${(e as Error).message})`, 'The guest may be stuck or out of memory: see "fcvm logs NAME", and stop it with "fcvm stop NAME"');
    });
    handshake.catch(() => {});
    const out = conn.openChannel();
    const err = req.tty ? undefined : conn.openChannel();
    const input = req.interactive ? conn.openChannel() : undefined;
    let open = err ? 2 : 1;
    let drained!: () => void;
    const allDrained = new Promise<void>((r) => (drained = r));
    const ended = () => --open === 0 && drained();
    // Output faster than our stdout takes it waits in the guest, not here. A reader that
    // went away (EPIPE: the stream is destroyed, and no 'drain' will come) takes nothing
    // more: its output is dropped, never held, so the exit still comes in.
    const sink = (w: Writable, ch: Channel) => (d: Buffer) => {
      if (w.destroyed || w.write(d)) return;
      onceWritable(w, ch.hold());
    };
    out.on('data', sink(io.stdout, out));
    out.on('end', ended);
    err?.on('data', sink(io.stderr, err));
    err?.on('end', ended);

    let execId = '';
    let exitCode: number | undefined;
    let resolveExit!: (code: number) => void;
    const exited = new Promise<number>((r) => (resolveExit = r));
    conn.onEvent((name, data) => {
      const p = ExecExitedSchema.safeParse(data);
      if (name === EXEC.exited && p.success && (execId === '' || p.data.execId === execId)) {
        exitCode = p.data.exitCode;
        resolveExit(p.data.exitCode);
      }
    });
    const start: ExecStart = {
      target: req.target,
      command: req.command,
      env: req.env,
      ...(req.workdir ? { workdir: req.workdir } : {}),
      ...(req.user ? { user: req.user } : {}),
      tty: req.tty,
      ...(req.tty ? terminalSize(io.stdout) : {}),
      ...(input ? { stdinChannel: input.id } : {}),
      stdoutChannel: out.id,
      ...(err ? { stderrChannel: err.id } : {}),
    };
    try {
      const started = conn.request(EXEC.start, start, 30_000);
      started.catch(() => {});
      await handshake;
      mark('handshake done');
      execId = ((await started) as { execId: string }).execId;
    } catch (e) {
      if (isFcvmError(e)) throw e;
      if (e instanceof RemoteError && e.code === 'NOT_RUNNING') throw errors.execFailed(what, e.message, 'See why with "fcvm logs NAME" and "fcvm ls"; "fcvm exec NAME --vm -- ..." still runs in the guest OS');
      if (e instanceof RemoteError) throw errors.execFailed(what, e.message);
      throw errors.execFailed(what, (e as Error).message);
    }

    mark('exec started');
    if (req.tty) restore.push(attachTerminal(io.stdin, io.stdout, (cols, rows) => void conn.request(EXEC.resize, { execId, cols, rows }).catch(() => {})));
    // stdin waits while the supervisor holds more than a little of it for the guest.
    if (input) restore.push(forwardStdin(io.stdin, input, { highWater: STDIN_HIGH_WATER, backlog: () => input.backlog, onceDrained: (cb) => input.onceDrained(cb) }));
    // The first signal may have come before the exec started; later ones come directly.
    // An agent older than SIGPIPE's forwarding (a snapshot's) refuses it: SIGTERM then.
    const forward = (sig: string): void => void conn.request(EXEC.signal, { execId, signal: sig }).catch(() => sig === 'SIGPIPE' && forward('SIGTERM'));
    const onAbort = () => {
      forward(String(io.interrupt.reason));
      // A reader that went away ends the command as a closed pipe would, even one that
      // ignores SIGPIPE (Python, Node, Go do): its output goes nowhere now.
      if (readerIsGone()) {
        setTimeout(() => {
          killedForReader = true;
          forward('SIGKILL');
        }, READER_GONE_GRACE_MS).unref();
      }
    };
    let killedForReader = false;
    if (io.interrupt.aborted) onAbort();
    else io.interrupt.addEventListener('abort', onAbort, { once: true });
    let signals = 0;
    const again = (sig: NodeJS.Signals) => {
      // The first signal is the one that aborted, unless the reader going away did.
      if (++signals > 1 || readerIsGone()) forward(sig);
    };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, again);
    restore.push(() => {
      io.interrupt.removeEventListener('abort', onAbort);
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, again);
    });

    const lost = conn.closed.then(() => {
      if (exitCode === undefined) throw errors.execFailed(what, 'the connection to the VM was lost (did the VM stop?)', 'See whether it still runs with "fcvm ls", and why it ended with "fcvm logs NAME"');
      return exitCode;
    });
    const remoteCode = await Promise.race([exited, lost]);
    // Killed because its reader or terminal went away: the code of what happened to fcvm
    // (141 for a closed pipe, 129 for a hung-up terminal), as for a command that died of it.
    const code = killedForReader && remoteCode === 128 + osConstants.signals.SIGKILL ? 128 + (osConstants.signals[String(io.interrupt.reason) as NodeJS.Signals] ?? osConstants.signals.SIGKILL) : remoteCode;
    mark('exit reported');
    await Promise.race([allDrained, new Promise((r) => setTimeout(r, 2000).unref())]);
    return code;
  } finally {
    for (const r of restore.reverse()) r();
    conn.close();
  }
}
