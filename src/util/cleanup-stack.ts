import { messageOf } from '../errors/catalogue.js';

type Undo = { name: string; fn: () => unknown | Promise<unknown> };

/**
 * Every acquisition registers its undo here. `run()` executes the undos once, in reverse
 * order, and collects every failure instead of stopping at the first one.
 */
export class CleanupStack implements AsyncDisposable {
  private undos: Undo[] = [];
  private ran: Promise<Error[]> | undefined;

  /** Register an undo step. Returns a function that runs this one step early. */
  push(name: string, fn: () => unknown | Promise<unknown>): () => Promise<void> {
    const undo: Undo = { name, fn };
    this.undos.push(undo);
    return async () => {
      const i = this.undos.indexOf(undo);
      if (i < 0) return;
      this.undos.splice(i, 1);
      await undo.fn();
    };
  }

  get size(): number {
    return this.undos.length;
  }

  /** Run all undos in reverse order, once. Resolves to the failures (never rejects). */
  run(onError?: (name: string, e: unknown) => void): Promise<Error[]> {
    this.ran ??= (async () => {
      const failures: Error[] = [];
      while (this.undos.length > 0) {
        const undo = this.undos.pop()!;
        try {
          await undo.fn();
        } catch (e) {
          onError?.(undo.name, e);
          failures.push(new Error(`cleanup "${undo.name}" failed: ${messageOf(e)}`, { cause: e }));
        }
      }
      return failures;
    })();
    return this.ran;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.run();
  }
}
