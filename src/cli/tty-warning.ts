/**
 * podman's warning for -i with -t when fcvm's stdin is no terminal: the container's
 * terminal then reads a pipe or file as typed keys, and its end is no end of input (a
 * shell waits for more, as under podman). Said once on stderr; the run goes on.
 */
export function notATerminalWarning(interactive: boolean, tty: boolean, stdinIsTerminal: boolean): string | undefined {
  if (!interactive || !tty || stdinIsTerminal) return undefined;
  return 'fcvm: warning: the input device is not a TTY; -t with -i might not work properly (to pipe input, give -i alone)\n';
}

/** Writes notATerminalWarning for this process's stdin, if it applies. */
export function warnIfNotATerminal(interactive: boolean | undefined, tty: boolean | undefined): void {
  const w = notATerminalWarning(interactive === true, tty === true, process.stdin.isTTY === true);
  if (w) process.stderr.write(w);
}
