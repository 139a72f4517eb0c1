import { errors } from '../errors/catalogue.js';
import type { ExecRequest } from '../exec/exec-client.js';
import { parseEnv, parsePid, validateName } from './parse.js';

export interface ExecFlags {
  pid?: string;
  vm?: boolean;
  interactive?: boolean;
  tty?: boolean;
  env?: string[];
  workdir?: string;
  user?: string;
}

export interface ExecOptions {
  by: { name?: string; pid?: number };
  request: ExecRequest;
}

/**
 * Flags to options for `fcvm exec`. With neither -i nor -t, a local terminal on both
 * stdin and stdout makes the session interactive with a TTY (auto -it).
 */
export function execOptionsFromFlags(positional: readonly string[], flags: ExecFlags, terminal: boolean): ExecOptions {
  let args = [...positional];
  let by: ExecOptions['by'];
  if (flags.pid !== undefined) {
    by = { pid: parsePid(flags.pid, 'Give the PID shown by "fcvm ls"') };
  } else {
    const name = args.shift();
    if (!name || name === '--') throw errors.usage('no VM given', 'Usage: fcvm exec NAME|--pid PID [options] -- COMMAND [ARG...]');
    by = { name: validateName(name) };
  }
  if (args[0] === '--') args = args.slice(1);
  if (args.length === 0) throw errors.usage('no command given', 'Usage: fcvm exec NAME|--pid PID [options] -- COMMAND [ARG...]');
  const auto = flags.interactive === undefined && flags.tty === undefined && terminal;
  return {
    by,
    request: {
      target: flags.vm ? 'vm' : 'container',
      command: args,
      env: parseEnv(flags.env ?? []),
      workdir: flags.workdir,
      user: flags.user,
      interactive: auto || (flags.interactive ?? false),
      tty: auto || (flags.tty ?? false),
    },
  };
}
