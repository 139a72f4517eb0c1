import { Command } from 'commander';
import { parsePortQuery } from '../../options/port-query.js';
import { validateName } from '../../options/parse.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm port NAME [GUESTPORT[/PROTO]]` */
export function portCommand(host: CommandHost): Command {
  return new Command('port')
    .description('the host ports a VM publishes, as podman port: "80/tcp -> 0.0.0.0:8080" lines, or with GUESTPORT only where it is published')
    .argument('<name>', 'the VM')
    .argument('[port]', 'a guest port, with /tcp (default) or /udp')
    .action(async (name: string, port: string | undefined) => {
      const vm = validateName(name);
      const query = port === undefined ? undefined : parsePortQuery(port);
      const ctx = host.context();
      const { vmPorts } = await import('../../lifecycle/port.js');
      process.stdout.write((await vmPorts(ctx.layout, ctx.log, vm, query)).map((l) => `${l}\n`).join(''));
    });
}
