import { isatty } from 'node:tty';
/**
 * fcvm's reader going away: a closed pipe (EPIPE, `fcvm logs VM | head -1`) or a terminal
 * that hung up (EIO, a closed ssh session or terminal window). Neither is fcvm's error:
 * output is dropped from then on, and a running command winds down as it would on
 * SIGPIPE or SIGHUP (interrupts.ts), stopping its container and leaving nothing behind.
 */
type Listener = (sig: 'SIGPIPE' | 'SIGHUP') => void;

const listeners = new Set<Listener>();
let gone = false;
let hungUp = false;
let detached = false;

/** An error on fcvm's own stdin, stdout or stderr: the reader (or the terminal) is gone. */
export function onStdioError(e: NodeJS.ErrnoException): void {
  // A detached supervisor's stdio is its launcher's pipe, which goes when the launcher does.
  if (detached) return;
  const sig = e.code === 'EPIPE' ? 'SIGPIPE' : 'SIGHUP';
  gone = true;
  if (e.code === 'EIO') hungUp = true;
  for (const l of listeners) l(sig);
}

/** Which of fds 0-2 were terminals at start. */
let startedOnTty = [false, false, false];

/**
 * Keeps errors on fcvm's own stdout and stderr from crashing it; called once, at start.
 * Not stdin: opening it would make a piped fd 0 non-blocking for every process that
 * shares it. Whoever reads stdin adds onStdioError then (terminal.ts forwardStdin).
 */
export function guardStdio(isTty: (fd: number) => boolean = isatty): void {
  startedOnTty = [0, 1, 2].map((fd) => isTty(fd));
  for (const s of [process.stdout, process.stderr]) s.on('error', onStdioError);
}

/**
 * For a process whose stdio is a launcher's pipe (a detached supervisor, a pool member):
 * that pipe going away is no reason to wind down, and writes there must not kill the run.
 */
export function detachStdio(): void {
  detached = true;
}

/**
 * True once fcvm's reader went away (not for a detached process): a pipe that closed, or
 * a terminal that hung up, even while nothing was written to it (its descriptors then
 * answer no terminal ioctl).
 */
export function readerIsGone(isTty: (fd: number) => boolean = isatty): boolean {
  if (!gone && !detached && terminalHungUp(isTty)) gone = hungUp = true;
  return gone;
}

function terminalHungUp(isTty: (fd: number) => boolean): boolean {
  return startedOnTty.some((was, fd) => was && !isTty(fd));
}

/** Calls `l` when the reader goes away; returns the undo. */
export function readerGone(l: Listener): () => void {
  listeners.add(l);
  return () => void listeners.delete(l);
}

/**
 * Before exiting after the terminal hung up: Node's exit would restore the terminal's
 * mode and abort when that fails (node::ResetStdio asserts on EIO). It skips closed
 * descriptors, and there is no terminal left to restore.
 */
export function releaseHungUpTerminal(fs: { closeSync(fd: number): void; openSync(path: string, flags: string): number }, isTty: (fd: number) => boolean = isatty): void {
  if (!hungUp && !terminalHungUp(isTty)) return;
  for (const fd of [0, 1, 2]) {
    try {
      fs.closeSync(fd);
    } catch {
      // Already closed.
    }
  }
  // /dev/null takes the lowest free descriptors, 0 to 2: no file opened later (a state
  // write still finishing) can become fcvm's stdout.
  for (let i = 0; i < 3; i++) {
    try {
      fs.openSync('/dev/null', 'r+');
    } catch {
      break;
    }
  }
}
