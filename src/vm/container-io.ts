import type { Writable } from 'node:stream';
import { errors } from '../errors/catalogue.js';
import { attachTerminal, followResizes, forwardStdin, terminalSize } from '../exec/terminal.js';
import { onceWritable } from '../util/once-writable.js';
import { METHODS } from '../protocol/api.js';
import type { Channel } from '../protocol/channel.js';
import { LinePrefixer } from './output.js';
import type { Ctx } from './run-context.js';

/** Past this many bytes of container output waiting for the user's terminal, the agent link waits. */
const OUTPUT_HIGH_WATER = 1 << 20;

/** stdin bytes sent but not yet taken by the agent link, past which reading stdin waits. */
const STDIN_HIGH_WATER = 1 << 20;

const isWritable = (x: unknown): x is Writable => typeof (x as Writable | undefined)?.writableLength === 'number';

/** The container's streams as the supervisor wired them. */
export interface ContainerIo {
  out: Channel;
  err: Channel;
  /** Its stdin (-i), if it has one. */
  input: Channel | undefined;
  /** The local terminal's size, for a container that gets a terminal now. */
  size: { cols: number; rows: number } | undefined;
  /** Resolves once both output channels have ended. */
  drained: Promise<void>;
}

/**
 * Wires the container's streams on the host. An attached run is podman's (`podman run`
 * always; `snapshot run` with -i or -t): the container's stdout and stderr are fcvm's
 * own, byte for byte; with -i its stdin is fcvm's (forwarded with EOF), and with -t the
 * local terminal follows (raw with -i, so Ctrl-C goes to the container). Otherwise (a
 * clone's output, as the seed prints it) its lines go to stderr, prefixed. The VM's log
 * gets the prefixed lines either way (a detached supervisor's output is its log
 * already). A clone takes over the channels its source's supervisor opened.
 */
export function wireContainerIo(c: Ctx): ContainerIo {
  const { conn, env } = c;
  const take = (id: number | undefined) => (id !== undefined ? conn.adoptChannel(id) : conn.openChannel());
  const out = take(c.restored?.stdoutChannel);
  const err = take(c.restored?.stderrChannel);
  const tty = c.restored ? (c.restored.tty ?? false) : c.opts.tty;
  // A clone keeps its source's container: -t and -i attach to what it has.
  if (c.restored && ((c.opts.tty && !tty) || (c.opts.interactive && c.restored.stdinChannel === undefined))) {
    const flag = c.opts.tty && !tty ? 't' : 'i';
    throw errors.invalidOption(flag === 't' ? '--tty' : '--interactive', 'true', `the snapshot's container was started without -${flag}, and a clone keeps its container`,
      'Leave it out, snapshot a VM started with -it, or use --exec CMD -it for a command of its own in the clone');
  }
  const attached = env.attach;
  const sinks = [attached ? undefined : env.out, c.opts.detach ? undefined : c.vmLog].filter((x) => x !== undefined);
  const outLines = sinks.map((s) => new LinePrefixer('[ctr:out]', s));
  const errLines = sinks.map((s) => new LinePrefixer('[ctr:err]', s));
  // Output faster than the user's terminal takes it holds up its channels (the guest's
  // container then waits on its pipe) instead of piling up here.
  const targets = [attached?.stdout, attached?.stderr, env.out].filter(isWritable);
  let held = false;
  const pushed = () => {
    if (held) return;
    // A target whose reader went away (destroyed: no 'drain' will come) holds nothing up.
    const full = targets.find((w) => !w.destroyed && w.writableLength > OUTPUT_HIGH_WATER);
    if (!full) return;
    held = true;
    const release = [out.hold(), err.hold()];
    onceWritable(full, () => {
      for (const r of release) r();
      held = false;
    });
  };
  out.on('data', (d) => {
    attached?.stdout.write(d);
    for (const l of outLines) l.push(d);
    pushed();
  });
  err.on('data', (d) => {
    attached?.stderr.write(d);
    for (const l of errLines) l.push(d);
    pushed();
  });
  let ended = 0;
  let resolveDrained!: () => void;
  const drained = new Promise<void>((r) => (resolveDrained = r));
  const onEnd = () => ++ended === 2 && resolveDrained();
  out.on('end', () => (outLines.forEach((l) => l.flush()), onEnd()));
  err.on('end', () => (errLines.forEach((l) => l.flush()), onEnd()));

  // stdin (-i): the user's, forwarded with EOF; a detached one stays open with no input.
  const stdinId = c.restored?.stdinChannel;
  const input = c.restored ? (stdinId !== undefined ? conn.adoptChannel(stdinId) : undefined) : c.opts.interactive ? conn.openChannel() : undefined;
  if (input && attached && c.opts.interactive) {
    c.cleanup.push('stop forwarding stdin', forwardStdin(attached.stdin, input, { highWater: STDIN_HIGH_WATER, backlog: () => input.backlog, onceDrained: (cb) => input.onceDrained(cb) }));
  }
  const size = attached ? terminalSize(attached.stdout) : undefined;
  if (tty && attached) {
    const resize = (cols: number, rows: number) => void conn.request(METHODS.resize, { cols, rows }).catch(() => {});
    // Raw mode only with -i: every key, Ctrl-C included, then goes to the container.
    c.cleanup.push('restore the terminal', c.opts.interactive ? attachTerminal(attached.stdin, attached.stdout, resize) : followResizes(attached.stdout, resize));
    // A clone's terminal has its source's size until told otherwise.
    if (c.restored && size) resize(size.cols, size.rows);
  }
  return { out, err, input, size, drained };
}
