#!/usr/bin/env -S node --
// "node --": Node 20 takes a later "--env-file PATH" (podman run's flag) as its own unless "--" ends its options.
import { Command, CommanderError, Option } from 'commander';
import { cliContext, type CliContext, type GlobalFlags } from './context.js';
import { renderError } from './render-error.js';
import { lsCommand } from './commands/ls.js';
import { execCommand } from './commands/exec.js';
import { setupCommand } from './commands/setup.js';
import { podmanRunCommand } from './commands/podman/run.js';
import { podmanPrepareCommand } from './commands/podman/prepare.js';
import { elsewhereCommands } from './commands/podman/elsewhere.js';
import { snapshotCommand, snapshotsCommand } from './commands/snapshot.js';
import { testCommand } from './commands/test.js';
import { superviseCommand } from './commands/supervise.js';
import { poolMemberCommand } from './commands/pool-member.js';
import { stopCommand } from './commands/stop.js';
import { logsCommand } from './commands/logs.js';
import { inspectCommand } from './commands/inspect.js';
import { rmCommand } from './commands/rm.js';
import { waitCommand } from './commands/wait.js';
import { killCommand } from './commands/kill.js';
import { portCommand } from './commands/port.js';
import { cpCommand } from './commands/cp.js';
import { completeCommand, completionCommand } from './commands/completion.js';
import { SwitchableSink, type CommandHost } from './command-host.js';
import { LOG_LEVELS } from '../util/log.js';
import { closeSync, openSync } from 'node:fs';
import { guardStdio, releaseHungUpTerminal } from '../util/stdio-errors.js';

/** Builds the program. Commands throw; only `main` prints errors and sets the exit code. */
export function buildProgram(host: CommandHost): Command {
  const program = new Command('fcvm')
    .description('run OCI containers inside microVMs, one VM per container')
    .version('0.1.0')
    .option('--base-dir <dir>', 'where fcvm keeps artifacts, caches and state (env FCVM_BASE_DIR; default /var/lib/fcvm for root, ~/.local/share/fcvm otherwise)')
    .addOption(new Option('--log-level <level>', 'log level (env FCVM_LOG)').choices(LOG_LEVELS))
    .option('--debug', 'debug logs, and error stacks')
    .enablePositionalOptions()
    .showSuggestionAfterError();
  program.addCommand(setupCommand(host));
  program.addCommand(lsCommand(host));
  program.addCommand(execCommand(host));
  program.addCommand(snapshotCommand(host));
  program.addCommand(snapshotsCommand(host));
  program.addCommand(testCommand(host));
  program.addCommand(stopCommand(host));
  program.addCommand(logsCommand(host));
  program.addCommand(inspectCommand(host));
  program.addCommand(rmCommand(host));
  program.addCommand(waitCommand(host));
  program.addCommand(killCommand(host));
  program.addCommand(portCommand(host));
  program.addCommand(cpCommand(host));
  program.addCommand(completionCommand());
  program.addCommand(superviseCommand(host), { hidden: true });
  program.addCommand(poolMemberCommand(host), { hidden: true });
  program.addCommand(completeCommand(host, () => program), { hidden: true });
  const podman = new Command('podman').description('podman-compatible commands that run in microVMs').enablePositionalOptions();
  podman.addCommand(podmanRunCommand(host));
  podman.addCommand(podmanPrepareCommand(host));
  // podman's spellings of the lifecycle commands, for hands used to them.
  for (const c of [lsCommand(host), execCommand(host), stopCommand(host), rmCommand(host), waitCommand(host), killCommand(host), portCommand(host), cpCommand(host), logsCommand(host), inspectCommand(host)]) podman.addCommand(c);
  program.addCommand(podman);
  // podman's commands fcvm lacks, at both levels (as its own are): one line each on why, and what does the job.
  for (const group of [program, podman]) {
    for (const c of elsewhereCommands(group.commands.flatMap((x) => [x.name(), ...x.aliases()]))) group.addCommand(c, { hidden: true });
  }
  // Every (sub)command reports parse errors by throwing instead of exiting.
  const quiet = (c: Command) => {
    c.exitOverride().configureOutput({ writeErr: () => {}, outputError: () => {} });
    c.commands.forEach(quiet);
  };
  quiet(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  let ctx: CliContext | undefined;
  let program: Command;
  const diagnostics = new SwitchableSink(process.stderr);
  const host: CommandHost = {
    context: () => (ctx ??= cliContext(program.opts<GlobalFlags>(), (s) => diagnostics.write(s))),
    setExitCode: (c) => (exitCode = c),
    exitOnUncaught: (report, code) => {
      process.on('uncaughtException', (e) => {
        report(e);
        process.exit(code);
      });
    },
    diagnostics,
  };
  program = buildProgram(host);
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError && (e.code === 'commander.helpDisplayed' || e.code === 'commander.version')) return 0;
    // A command group without its command ("fcvm", "fcvm podman"): podman says so and exits 125.
    if (e instanceof CommanderError && e.code === 'commander.help') e.message = 'missing command';
    return renderError(e, program.opts<GlobalFlags>().debug ?? false, (s) => diagnostics.write(s), ctx?.layout.base);
  }
}

guardStdio();
process.exitCode = await main(process.argv);
releaseHungUpTerminal({ closeSync, openSync });
