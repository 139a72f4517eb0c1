import type { CliContext } from './context.js';

/** What a command gets from the program: the global context, and a way to set the exit code. */
export interface CommandHost {
  context(): CliContext;
  setExitCode(code: number): void;
}
