import { CommanderError } from 'commander';
import { errors } from '../errors/catalogue.js';
import { baseDirFault, machineFault } from '../errors/os-fault.js';
import { FCVM_ERROR_EXIT, FcvmError, isFcvmError } from '../errors/fcvm-error.js';

/**
 * Turns anything thrown into an FcvmError; commander's parse errors become USAGE errors.
 * `baseDir`: the base directory the command used, if it got that far.
 */
export function toFcvmError(e: unknown, baseDir?: string): FcvmError {
  if (isFcvmError(e)) return e;
  if (e instanceof CommanderError) {
    const msg = e.message.replace(/^error: /, '').replace(/\.+$/, '');
    return errors.usage(msg, usageHint(e.code));
  }
  const err = e instanceof Error ? e : new Error(String(e));
  const fault = machineFault(err, 'writing its files', (err as NodeJS.ErrnoException).path ?? 'a directory fcvm uses');
  if (fault) return fault;
  const denied = baseDir === undefined ? undefined : baseDirFault(err, baseDir);
  if (denied) return denied;
  return new FcvmError('INTERNAL', `unexpected error: ${err.message}`, {
    hint: 'This is a bug in fcvm; rerun as "fcvm --debug COMMAND ..." and report the stack',
    cause: err,
  });
}

function usageHint(code: string): string {
  if (code === 'commander.unknownOption') return 'Run the command with --help to see its options';
  if (code === 'commander.unknownCommand' || code === 'commander.help') return 'Run "fcvm --help" to see the commands';
  return 'Run the command with --help for usage';
}

/**
 * The one place that prints an error: a single line "fcvm: message. hint", and with
 * --debug the code, the stack and the causes. Returns the exit code.
 */
export function renderError(e: unknown, debug: boolean, write: (s: string) => void, baseDir?: string): number {
  const err = toFcvmError(e, baseDir);
  if (err.code === 'INTERRUPTED') return err.exitCode;
  write(`fcvm: ${err.oneLine()}\n`);
  if (debug) {
    write(`  code: ${err.code}\n`);
    let c: unknown = err;
    while (c instanceof Error) {
      write(`  ${(c.stack ?? c.message).split('\n').join('\n  ')}\n`);
      c = c.cause;
    }
  }
  return err.exitCode ?? FCVM_ERROR_EXIT;
}
