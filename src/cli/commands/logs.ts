import { Command } from 'commander';
import { logsOptionsFromFlags, type LogsFlags } from '../../options/lifecycle-options.js';
import { withInterrupts } from '../interrupts.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm logs [-f] [-t] [-n] [--tail N] [--since TIME] [--until TIME] NAME...` */
export function logsCommand(host: CommandHost): Command {
  return new Command('logs')
    .description('print a VM\'s container output (stdout and stderr apart) and its supervisor\'s messages; a VM\'s log is kept a day after it ends (not with --rm), or until rm; with several VMs, each line starts with its VM\'s name')
    .argument('<names...>', 'the VMs')
    .option('-f, --follow', 'go on printing until the VM ends')
    .option('--tail <lines>', 'only the last N lines (or "all")')
    .option('-t, --timestamps', 'each line after the time it was written')
    .option('--since <time>', 'only lines written since TIME: a duration back from now (10m), a Unix time, or a date and time (2026-12-07T09:30:00Z)')
    .option('--until <time>', 'only lines written until TIME (as --since)')
    .option('-n, --names', 'as podman\'s: name each line\'s VM when there are several (fcvm\'s names are its IDs, so this is always so)')
    .action(async (names: string[], flags: LogsFlags) => {
      const opts = logsOptionsFromFlags(names, flags);
      const ctx = host.context();
      const { vmLogs } = await import('../../lifecycle/logs.js');
      await withInterrupts((interrupt) => vmLogs(ctx.layout, ctx.log, opts, { stdout: process.stdout, stderr: process.stderr }, interrupt));
    });
}
