import type { CliContext } from './context.js';
import type { TextSink } from '../vm/output.js';

/** What a command gets from the program: the global context, and a way to set the exit code. */
export interface CommandHost {
  context(): CliContext;
  setExitCode(code: number): void;
  /**
   * From now on an exception nothing caught is handed to `report`, and the process ends
   * with `exitCode`. Only the entry point ends the process; a command asks it to.
   */
  exitOnUncaught(report: (e: Error) => void, exitCode: number): void;
  /** Where logs and the final error go: stderr, or a detached supervisor's log. */
  diagnostics: SwitchableSink;
}

/** A text sink whose target can change (a detached supervisor moves from its launcher's pipe to its log). */
export class SwitchableSink implements TextSink {
  constructor(private target: TextSink) {}
  write(chunk: string): boolean {
    this.target.write(chunk);
    return true;
  }
  switchTo(target: TextSink): void {
    this.target = target;
  }
}
