import { Command } from 'commander';
import { parseChoice } from '../../options/parse.js';
import { completionScript, SHELLS } from '../../completion/scripts.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm completion bash|zsh|fish` */
export function completionCommand(): Command {
  return new Command('completion')
    .description('print a completion script: eval "$(fcvm completion bash)", source <(fcvm completion zsh), fcvm completion fish | source')
    .argument('<shell>', 'bash, zsh or fish')
    .action((shell: string) => {
      process.stdout.write(completionScript(parseChoice('shell', shell, SHELLS)));
    });
}

/** The hidden `__complete -- WORDS...` that the scripts call. */
export function completeCommand(host: CommandHost, program: () => Command): Command {
  return new Command('__complete')
    .description('(internal) complete the last word')
    .argument('[words...]')
    .allowUnknownOption()
    .action(async (words: string[]) => {
      const { complete, formatCompletion } = await import('../../completion/engine.js');
      const { fromCommander } = await import('../../completion/tree.js');
      const { localNames } = await import('../../completion/names.js');
      const ctx = host.context();
      const w = words[0] === '--' ? words.slice(1) : words;
      process.stdout.write(formatCompletion(await complete(fromCommander(program()), w.length ? w : [''], localNames(ctx.layout))));
    });
}
