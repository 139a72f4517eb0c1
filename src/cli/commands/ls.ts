import { Command } from 'commander';
import { parsePid } from '../../options/parse.js';
import { listVms, type VmListing } from '../../state/list.js';
import type { CommandHost } from '../command-host.js';
import { formatMapping } from '../../net/publish.js';
import { table } from '../table.js';

/** `fcvm ls [--json] [--pid P]` */
export function lsCommand(host: CommandHost): Command {
  return new Command('ls')
    .description('list running VMs')
    .option('--json', 'print JSON')
    .option('--pid <pid>', 'only the VM whose supervisor or VMM has this PID')
    .action(async (flags: { json?: boolean; pid?: string }) => {
      const ctx = host.context();
      const pid = flags.pid === undefined ? undefined : parsePid(flags.pid, 'Give the PID shown by "fcvm ls"');
      const vms = await listVms(ctx.layout, ctx.log, pid);
      process.stdout.write(flags.json ? JSON.stringify(vms, null, 2) + '\n' : vmTable(vms));
    });
}

function vmTable(vms: VmListing[]): string {
  const rows = [['NAME', 'PID', 'STATUS', 'IMAGE', 'HYPERVISOR', 'ACCEL', 'UPTIME', 'NETWORK', 'GUEST IP', 'PORTS', 'JAIL']];
  for (const v of vms) {
    rows.push([
      v.name, String(v.pid), v.status, v.image, v.hypervisor, v.accel ?? '-', formatUptime(v.uptimeSeconds),
      v.network.mode, v.network.guestIp ?? '-', v.network.publish.map(formatMapping).join(',') || '-', jailSummary(v.jail),
    ]);
  }
  return table(rows);
}

function formatUptime(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** "uid N" for a jailed VMM, "user" for an unprivileged user's, "OFF" without a jail. */
function jailSummary(j: VmListing['jail']): string {
  if (!j) return '-';
  if (j.mode === 'off') return 'OFF';
  return j.mode === 'full' ? `uid ${j.uid}` : 'user';
}
