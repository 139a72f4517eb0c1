import { Command } from 'commander';
import { stressOptionsFromFlags, type StressRawFlags } from '../../options/stress-options.js';
import { withInterrupts } from '../interrupts.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm test stress ...` */
export function testCommand(host: CommandHost): Command {
  const cmd = new Command('test').description('tests of fcvm on this host');
  cmd.addCommand(new Command('stress')
    .description('start N clones of a snapshot in batches, wait until each answers, report time to healthy and memory per clone')
    .option('--snapshot <tag>', 'clone this snapshot')
    .option('--image <image>', 'snapshot a VM of this image first (deleted afterwards)')
    .option('--clones <n>', 'how many clones', '10')
    .option('--batch <b>', 'how many start at once', '5')
    .option('--publish-base <port>', 'clone i publishes host port PORT+i and is healthy when HTTP answers there (else when an exec runs)')
    .option('--json <file>', 'write the results as JSON')
    .option('--plot <file>', 'write an SVG chart of time to healthy')
    .option('--health-timeout <seconds>', 'how long a clone may take to answer', '180')
    .option('--cpu <n>', 'with --image: vCPUs of the VM to snapshot (its clones have as many)')
    .option('--mem <mib>', 'with --image: memory of the VM to snapshot')
    .action(async (raw: StressRawFlags) => {
      const opts = stressOptionsFromFlags(raw);
      const ctx = host.context();
      const { runStress } = await import('../../stress/stress.js');
      const report = await withInterrupts((interrupt) =>
        runStress(opts, { layout: ctx.layout, log: ctx.log, out: process.stderr, interrupt, cli: process.argv[1]! }));
      // A clone that failed fails the test.
      host.setExitCode(report.failed > 0 ? 1 : 0);
    }));
  return cmd;
}
