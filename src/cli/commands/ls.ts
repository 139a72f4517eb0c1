import { Command } from 'commander';
import { parsePid } from '../../options/parse.js';
import { errors } from '../../errors/catalogue.js';
import { endedListing, listVms, type VmListing } from '../../state/list.js';
import { endedVms } from '../../state/ended.js';
import type { CommandHost } from '../command-host.js';
import { formatMappings } from '../../net/publish.js';
import { table } from '../table.js';
import { parseFormat, renderFormatted } from '../../options/format-option.js';
import { podmanPsJson, podmanPsRow } from '../../lifecycle/podman-view.js';
import { filtersWantEnded, matchesLsFilters, parseLsFilters } from '../../options/ls-filters.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `fcvm ls|ps [--json] [-q] [--pid P] [--filter K=V]...` */
export function lsCommand(host: CommandHost): Command {
  return new Command('ls')
    .alias('ps')
    .description('list running VMs, and with -a those that ended and were kept ("ps" is the same command)')
    .option('--json', 'print JSON')
    .option('--format <template>', 'a Go template per VM, as podman ps --format (e.g. \'{{.Names}} {{.Ports}}\'; "table ..." adds a header), or json')
    .option('-q, --quiet', 'print only the names')
    .option('--pid <pid>', 'only the VM whose supervisor or VMM has this PID')
    .option('-f, --filter <key=value>', 'only VMs with label=KEY[=VALUE], name=REGEX, id=NAME, status=STATUS, exited=CODE or ancestor=IMAGE (repeatable)', collect)
    .option('-a, --all', 'also the VMs that ended, as podman ps -a: kept until "fcvm rm" (or a day) unless run with --rm')
    .option('-n, --last <n>', 'only the N VMs started last')
    .option('-l, --latest', 'only the VM started last (--last 1)')
    .action(async (flags: { json?: boolean; quiet?: boolean; pid?: string; filter?: string[]; format?: string; last?: string; latest?: boolean; all?: boolean }) => {
      const pid = flags.pid === undefined ? undefined : parsePid(flags.pid, 'Give the PID shown by "fcvm ls"');
      const filters = parseLsFilters(flags.filter ?? []);
      const format = flags.format === undefined ? undefined : parseFormat(flags.format);
      const last = flags.latest ? 1 : flags.last === undefined ? undefined : parseLast(flags.last);
      const ctx = host.context();
      const running = await listVms(ctx.layout, ctx.log, pid);
      // As podman: -n/-l and a status=exited or exited= filter take ended VMs too, without -a.
      const ended = (flags.all || last !== undefined || filtersWantEnded(filters)) && pid === undefined ? await endedListings(ctx.layout.logs, running) : [];
      const vms = newest([...running, ...ended].filter((v) => matchesLsFilters(v, filters)), last).sort((a, b) => a.name.localeCompare(b.name));
      if (flags.quiet) return void process.stdout.write(vms.map((v) => `${v.name}\n`).join(''));
      if (format?.kind === 'template') return void process.stdout.write(renderFormatted(vms.map((v) => podmanPsRow(v)), format, table));
      if (format?.kind === 'json') return void process.stdout.write(JSON.stringify(vms.map((v) => podmanPsJson(v)), null, 2) + '\n');
      process.stdout.write(flags.json ? JSON.stringify(vms, null, 2) + '\n' : vmTable(vms));
    });
}

/** The kept VMs that ended, as rows: the newest of each name that no running VM has taken. */
async function endedListings(logsDir: string, running: VmListing[]): Promise<VmListing[]> {
  const taken = new Set(running.map((v) => v.name));
  const out: VmListing[] = [];
  for (const s of await endedVms(logsDir)) {
    if (taken.has(s.name)) continue;
    taken.add(s.name);
    out.push(endedListing(s));
  }
  return out;
}

function parseLast(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw errors.invalidOption('--last', v, 'not a whole number of at least 1', 'For example ps -n 3');
  return Number(v);
}

/** The `last` VMs started last (all without a number), in the listing's order. Pure. */
export function newest(vms: VmListing[], last: number | undefined): VmListing[] {
  if (last === undefined) return vms;
  const keep = new Set([...vms].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt)).slice(0, last));
  return vms.filter((v) => keep.has(v));
}

function vmTable(vms: VmListing[]): string {
  const rows = [['NAME', 'PID', 'STATUS', 'IMAGE', 'HYPERVISOR', 'ACCEL', 'UPTIME', 'NETWORK', 'GUEST IP', 'PORTS', 'JAIL']];
  for (const v of vms) {
    rows.push([
      v.name, v.pid ? String(v.pid) : '-', v.status === 'stopped' ? `exited (${v.exitCode ?? '?'})` : v.status, v.image, v.hypervisor, v.accel ?? '-', formatUptime(v.uptimeSeconds),
      v.network.mode, v.network.guestIp ?? '-', formatMappings(v.network.publish).join(',') || '-', jailSummary(v.jail),
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
