import { Command } from 'commander';
import { errors } from '../../errors/catalogue.js';
import { cloneFlagsFrom, type CloneRawFlags } from '../../options/clone-options.js';
import { parsePid, validateName } from '../../options/parse.js';
import { withInterrupts } from '../interrupts.js';
import type { CommandHost } from '../command-host.js';
import { table } from '../table.js';
import { prunePolicyFromFlags, type PruneFlags } from '../../options/prune-options.js';
import { detachedGlobals } from './supervise.js';
import { poolFromFlags, type PoolFlags } from '../../options/pool-options.js';
import { STARTUP_TAG_PREFIX } from '../../snapshot/startup-key.js';
import { warnIfNotATerminal } from '../tty-warning.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `fcvm snapshot create|serve|ls|run` */
export function snapshotCommand(host: CommandHost): Command {
  const cmd = new Command('snapshot').description('snapshot a running VM, serve a snapshot, and run clones of it');

  cmd.addCommand(new Command('create')
    .description('snapshot a running VM (it pauses briefly and keeps running)')
    .argument('[name]', 'the VM (or give --pid)')
    .option('--pid <pid>', 'the VM whose supervisor or VMM has this PID')
    .requiredOption('--tag <tag>', 'the snapshot\'s name (letters, digits, . _ -; at most 63)')
    .option('--no-trim', 'keep the guest\'s caches and free pages in the snapshot (faster to take, larger to keep)')
    .action(async (name: string | undefined, flags: { pid?: string; tag: string; trim: boolean }) => {
      const pid = flags.pid === undefined ? undefined : parsePid(flags.pid, 'Give the PID shown by "fcvm ls"');
      if ((name === undefined) === (pid === undefined)) throw errors.usage(name === undefined ? 'no VM given' : 'give a VM name or --pid, not both', 'Usage: fcvm snapshot create NAME|--pid PID --tag TAG');
      const tag = validateName(flags.tag, 'snapshot tag');
      if (tag.startsWith(STARTUP_TAG_PREFIX)) {
        throw errors.invalidOption('--tag', tag, `tags that start with "${STARTUP_TAG_PREFIX}" are the startup cache's`, 'Choose another tag');
      }
      const ctx = host.context();
      const { requestSnapshot } = await import('../../snapshot/request.js');
      const r = await requestSnapshot(ctx.layout, ctx.log, name !== undefined ? { name } : { pid: pid! }, tag, flags.trim ? {} : { trim: false });
      process.stdout.write(`snapshot "${r.tag}" of VM "${r.vm}": source paused ${r.pausedMs} ms, ${Math.round(r.memoryBytes / 2 ** 20)} MiB of memory\n`);
    }));

  cmd.addCommand(new Command('serve')
    .description('serve a snapshot\'s memory to clones, in the foreground; ending it ends its clones')
    .argument('<tag>', 'the snapshot')
    .option('--pool <n>', 'keep N clones restored and connected; "snapshot run --pid --exec" and "-d" take one, and the pool refills')
    .option('--network <mode>', 'the pooled clones\' network: bridged, rootless or none (default: the snapshot\'s, rootless for non-root)')
    .action(async (tag: string, flags: PoolFlags) => {
      validateName(tag, 'snapshot tag');
      const pool = poolFromFlags(flags);
      const ctx = host.context();
      const { serveSnapshot } = await import('../../snapshot/serve.js');
      const poolOpts = pool ? { ...pool, globalArgs: detachedGlobals(ctx) } : undefined;
      host.setExitCode(await withInterrupts((interrupt) => serveSnapshot(ctx.layout, ctx.log, tag, interrupt, process.stderr, poolOpts)));
    }));

  cmd.addCommand(new Command('ls')
    .description('list running memory servers and their clones')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const ctx = host.context();
      const { listServesWithClones } = await import('../../snapshot/listing.js');
      const serves = await listServesWithClones(ctx.layout, ctx.log);
      if (flags.json) return void process.stdout.write(JSON.stringify(serves, null, 2) + '\n');
      const rows = [['PID', 'TAG', 'CLONES', 'STARTED'], ...serves.map((s) => [String(s.pid), s.tag, s.clones.map((c) => c.name).join(',') || '-', s.startedAt])];
      process.stdout.write(table(rows));
    }));

  cmd.addCommand(new Command('run')
    .description('start a clone of a snapshot and supervise its container; with --exec, run one command in it and exit with its code')
    .option('--pid <pid>', 'the memory server ("fcvm snapshot serve") to clone from')
    .option('--snapshot <tag>', 'clone from the snapshot\'s files, without a server')
    .option('--name <name>', 'the clone\'s VM name')
    .option('--network <mode>', 'bridged, rootless or none (default: the source\'s, rootless for non-root)')
    .option('-p, --publish <[hostip:]hostport:guestport[/proto],...>', 'publish guest ports on the host (repeatable, comma-separated)', collect)
    .option('--map <HOST:GUEST[:ro],...>', 'point a volume\'s container path at another host directory (repeatable, comma-separated)', collect)
    .option('--exec <command>', 'run this in the clone\'s container, print its output, clean up, and exit with its code')
    .option('-i, --interactive', 'with --exec, forward stdin; without, attach stdin to a container started with -i')
    .option('-t, --tty', 'with --exec, a terminal for the command; without, attach to the terminal of a container started with -t')
    .option('-d, --detach', 'run in the background: print the clone\'s name once it is starting; output goes to its log')
    .option('--health-check <url>', 'HTTP URL as the guest sees it, polled from the host')
    .option('--health-check-timeout <seconds>', 'timeout of each health probe', '5')
    .option('--boot-timeout <seconds>', 'how long to wait for the restored agent', '120')
    .option('--stop-timeout <seconds>', 'grace period for the container on SIGINT/SIGTERM', '10')
    .option('--no-jail', 'UNSAFE, for debugging only: run the clone\'s VMM without its jail (as root, every capability, host namespaces, no seccomp, no cgroup)')
    .action(async (raw: CloneRawFlags) => {
      const flags = cloneFlagsFrom(raw);
      const ctx = host.context();
      if (raw.detach && flags.source.kind === 'serve') {
        // A pooled clone, if the server has one ready: it runs on by itself.
        const { takePooled } = await import('../../snapshot/pool-client.js');
        const pooled = await takePooled(ctx.layout, ctx.log, flags.source.pid, flags, true);
        if (pooled) return void process.stdout.write(`${pooled.name}\n`);
      }
      if (raw.detach) {
        const { launchDetached } = await import('../../vm/detach.js');
        const r = await withInterrupts((interrupt) => launchDetached({ kind: 'clone', flags }, detachedGlobals(ctx), host.diagnostics, interrupt));
        if ('name' in r) process.stdout.write(`${r.name}\n`);
        else host.setExitCode(r.exitCode);
        return;
      }
      warnIfNotATerminal(raw.interactive, raw.tty);
      const { snapshotRun } = await import('../../vm/snapshot-run.js');
      const attach = raw.interactive || raw.tty ? { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr } : undefined;
      host.setExitCode(await withInterrupts((interrupt) =>
        snapshotRun(flags, { layout: ctx.layout, log: ctx.log, out: process.stderr, interrupt, attach }, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr })));
    }));
  return cmd;
}

/** `fcvm snapshots [--json]`, `fcvm snapshots delete TAG` */
export function snapshotsCommand(host: CommandHost): Command {
  const cmd = new Command('snapshots')
    .description('list snapshots (tag, source image and its ID, vCPUs, memory, disk, created)')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const ctx = host.context();
      const { describeSnapshots } = await import('../../snapshot/listing.js');
      const list = await describeSnapshots(ctx.layout, ctx.log);
      if (flags.json) return void process.stdout.write(JSON.stringify(list, null, 2) + '\n');
      const mib = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;
      // The image ID and vCPUs tell apart entries of one image name (a re-imported image, --cpu).
      const rows = [['TAG', 'IMAGE', 'IMAGE ID', 'CPUS', 'MEMORY', 'DISK', 'CREATED', 'SOURCE', 'IN USE'], ...list.map((s) =>
        'error' in s ? [s.tag, `(broken: ${s.error})`, '-', '-', '-', '-', '-', '-', '-']
          : [s.tag, s.image, s.imageId?.replace(/^sha256:/, '').slice(0, 12) ?? '-', String(s.vcpus), `${mib(s.memoryMiB * 2 ** 20)} (${mib(s.memoryFileBytes)} on disk)`, mib(s.diskBytes), s.createdAt, s.startup ? `(startup cache, used ${s.startup.lastUsedAt})` : s.sourceName, s.users.join(',') || '-'])];
      process.stdout.write(table(rows));
    });
  cmd.addCommand(new Command('delete')
    .description('delete a snapshot (refused while a server or clone uses it)')
    .argument('<tag>', 'the snapshot')
    .action(async (tag: string) => {
      validateName(tag, 'snapshot tag');
      const ctx = host.context();
      const { deleteSnapshot } = await import('../../snapshot/listing.js');
      await deleteSnapshot(ctx.layout, ctx.log, tag);
      process.stdout.write(`deleted snapshot "${tag}"\n`);
    }));
  cmd.addCommand(new Command('prune')
    .description('remove startup snapshots (the cache of "podman run"): broken ones, those unused for --older-than, then the least recently used beyond --max-size; those in use stay')
    .option('--older-than <age>', 'unused for longer than this (90s, 30m, 12h, 7d, 2w)')
    .option('--max-size <size>', 'keep at most this much on disk (500M, 10G)')
    .option('--all', 'remove every startup snapshot not in use')
    .option('--json', 'print JSON')
    .action(async (flags: PruneFlags & { json?: boolean }) => {
      // `snapshots --json` is the parent's option too, and commander gives it to the parent.
      flags = { ...flags, json: flags.json || cmd.opts<{ json?: boolean }>().json };
      const policy = prunePolicyFromFlags(flags);
      const ctx = host.context();
      const { pruneStartup } = await import('../../snapshot/startup-cache.js');
      const r = await pruneStartup(ctx.layout, ctx.log, policy);
      const mib = (b: number) => Math.round(b / 2 ** 20);
      if (flags.json) {
        const row = (e: { tag: string; bytes: number; lastUsedMs: number }) => ({ tag: e.tag, bytes: e.bytes, lastUsedAt: new Date(e.lastUsedMs).toISOString() });
        return void process.stdout.write(JSON.stringify({ removed: r.removed.map(row), kept: r.kept.map(row), inUse: r.skippedInUse }) + '\n');
      }
      for (const e of r.removed) process.stdout.write(`removed ${e.tag} (${mib(e.bytes)} MiB, last used ${new Date(e.lastUsedMs).toISOString()})\n`);
      const kept = r.kept.reduce((n, e) => n + e.bytes, 0);
      process.stdout.write(`${r.removed.length} startup snapshot(s) removed, ${mib(r.removed.reduce((n, e) => n + e.bytes, 0))} MiB freed; ${r.kept.length} kept (${mib(kept)} MiB${r.skippedInUse.length ? `, ${r.skippedInUse.length} in use` : ''})\n`);
    }));
  return cmd;
}
