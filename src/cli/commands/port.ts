import { Command } from 'commander';
import { validateName } from '../../options/parse.js';
import { errors } from '../../errors/catalogue.js';
import type { CommandHost } from '../command-host.js';

/** `fcvm port NAME [GUESTPORT[/PROTO]]` */
export function portCommand(host: CommandHost): Command {
  return new Command('port')
    .description('the host ports a VM publishes, as podman port: "80/tcp -> 0.0.0.0:8080" lines, or with GUESTPORT only where it is published')
    .argument('<name>', 'the VM')
    .argument('[port]', 'a guest port, with /tcp (default) or /udp')
    .action(async (name: string, port: string | undefined) => {
      const vm = validateName(name);
      const want = port === undefined ? undefined : /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(port);
      if (port !== undefined && !want) throw errors.invalidOption('port', port, 'not a port number', 'Give a guest port, for example 80 or 53/udp');
      const ctx = host.context();
      const { findVmState } = await import('../../lifecycle/find.js');
      const s = await findVmState(ctx.layout, ctx.log, { name: vm });
      const maps = s.network.publish.filter((m) => !want || (m.guestPort === Number(want[1]) && m.proto === (want[2] ?? 'tcp')));
      if (want && maps.length === 0) throw errors.usage(`VM "${vm}" does not publish ${want[1]}/${want[2] ?? 'tcp'}`, `Run "fcvm port ${vm}" to see what it publishes`);
      process.stdout.write(maps.map((m) => (want ? `${m.hostIp}:${m.hostPort}\n` : `${m.guestPort}/${m.proto} -> ${m.hostIp}:${m.hostPort}\n`)).join(''));
    });
}
