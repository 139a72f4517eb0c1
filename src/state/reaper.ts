import { readFileSync } from 'node:fs';
import { lstat, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../util/log.js';
import { hostNetOps } from '../net/net-ops.js';
import { staleRules } from '../net/rules.js';
import { STORE_RUN_PREFIX } from '../images/image-store.js';
import { PULL_DIR_PREFIX } from '../images/host-pull.js';
import { ownerAlive } from '../util/owner-tag.js';
import { removeTree } from '../util/remove-tree.js';
import { withFileLock } from '../util/file-lock.js';
import { isSameProcessAlive, processStartTime, waitGone } from '../util/proc.js';
import { isOwnerAlive, StateStore } from './store.js';
import { noteInLog, writeEndedRecord } from './ended.js';
import type { Layout } from '../setup/layout.js';
import { MEMORY_FILE_PREFIX, SHM } from '../vm/memory-file.js';
import { listServes } from '../snapshot/serve-state.js';
import { reapOrphanCgroups, removeCgroupDirs } from '../jail/reap.js';
import { reapJailIdClaims } from '../jail/id-registry.js';
import { reapHostIndexes } from '../net/host-index.js';
import { pruneEndedLogs, removeLog } from '../logs/vm-log.js';

/** How long the reaper waits for a killed VMM to be gone. */
const VMM_EXIT_WAIT_MS = 10_000;

/** Reaps everything fcvm processes that died left under `layout`: VMs, networks, partial files. */
export function reapLeftovers(layout: Layout, log: Logger): Promise<string[]> {
  return reapStale(new StateStore(layout.vmState), layout.vmRuntime, join(layout.locks, 'alloc.lock'), log, [layout.artifacts, layout.imageCache, layout.debs, layout.vmState, layout.snapshots, layout.baseDisks], layout);
}

/**
 * Removes what dead supervisors left behind: state files whose owner is gone, their
 * VMM if it somehow survived, and run directories no live VM owns. Every command calls it.
 */
export async function reapStale(store: StateStore, runRoot: string, lockPath: string, log: Logger, partialDirs: readonly string[] = [], layout?: Layout): Promise<string[]> {
  const reaped: string[] = [];
  const liveRunDirs = new Set<string>();
  for (const entry of await store.list()) {
    if (!entry.ok) {
      if (entry.future) continue;
      // A file we cannot read is only reaped once it is old enough not to be mid-write.
      const age = Date.now() - (await stat(entry.path).then((s) => s.mtimeMs, () => Date.now()));
      if (age > 10_000) {
        log.debug({ path: entry.path, why: entry.why }, 'reaping unreadable state file');
        await rm(entry.path, { force: true });
      }
      continue;
    }
    const s = entry.state;
    if (isOwnerAlive(s)) {
      liveRunDirs.add(s.runDir);
      continue;
    }
    log.debug({ name: s.name, pid: s.pid }, 'reaping VM whose supervisor is gone');
    const vmmStart = s.vmmPid ? processStartTime(s.vmmPid) : undefined;
    if (s.vmmPid && vmmStart !== undefined && isVmm(s.vmmPid, s.runDir)) {
      try {
        process.kill(s.vmmPid, 'SIGKILL');
      } catch {
        // already gone
      }
      // A VMM dies of its supervisor's death too (pdeathsig), but tearing down its
      // memory takes a moment: the next command must not return while it is still there.
      await waitGone(s.vmmPid, vmmStart, VMM_EXIT_WAIT_MS);
    }
    if (s.network.netns) await hostNetOps.deleteNetns(s.network.netns).catch(() => {});
    if (s.jail?.cgroup) await removeCgroupDirs(s.jail.cgroup.dirs, log);
    await rm(s.runDir, { recursive: true, force: true });
    // A kept VM (without --rm) stays as one that ended, killed: 137 unless its log recorded an exit.
    if (s.log?.keep) {
      noteInLog(s.log.path, `its supervisor (pid ${s.pid}) was killed; the next fcvm command stopped the VM`);
      await writeEndedRecord(s, 'its supervisor was killed', 128 + 9).catch((e: unknown) => log.debug({ err: e }, 'could not keep the record of an ended VM'));
    }
    else if (s.log) await removeLog(s.log.path);
    // Under the allocation lock and only if the file is still this VM's: meanwhile a new
    // VM may have claimed the name.
    await withFileLock(lockPath, async () => {
      const now = await store.load(s.name);
      if (now.ok && now.state.id === s.id) await store.remove(s.name);
    });
    reaped.push(s.name);
  }
  if (process.getuid?.() === 0) await reapNetwork(log);
  await reapOrphanCgroups(idAlive, log);
  if (process.getuid?.() === 0) {
    const ids = await reapJailIdClaims().catch((e) => (log.debug({ err: e }, 'could not reap jail id claims'), []));
    if (ids.length > 0) log.debug({ ids }, 'reaped the jail id claims of dead supervisors');
    const indexes = reapHostIndexes();
    if (indexes.length > 0) log.debug({ indexes }, 'reaped the network indexes of dead supervisors');
  }
  await reapMemoryFiles(log);
  // Listing servers removes the files of dead ones.
  if (layout) await listServes(layout, log);
  if (layout) await pruneEndedLogs(layout.logs);
  for (const dir of partialDirs) await reapPartials(dir, log);
  // An image store build's run root in /tmp (src/images/image-store.ts): only a real
  // directory of this user's, which no one else could have written into (mode 0700).
  if (layout) await reapPartials('/tmp', log, STORE_RUN_PREFIX, process.getuid?.());
  // A host pull's credentials (src/images/host-pull.ts), left by a killed fcvm.
  if (layout) await reapPartials('/tmp', log, PULL_DIR_PREFIX, process.getuid?.());
  // Temporary files of atomic writes inside snapshots (meta.json, the check stamp).
  if (layout) {
    for (const tag of await readdir(layout.snapshots).catch(() => [] as string[])) {
      if (!tag.startsWith('.')) await reapPartials(join(layout.snapshots, tag), log);
    }
    await reapPartials(layout.serveState, log);
  }
  // Run directories that no state file claims (a supervisor killed before it wrote one),
  // and disk directories (raw disks on the disk root), named by the same VM ids.
  const liveIds = new Set([...liveRunDirs].map((d) => d.slice(d.lastIndexOf('/') + 1)));
  for (const root of [runRoot, ...(layout ? [layout.vmmDirs] : [])]) {
    for (const d of await readdir(root).catch(() => [] as string[])) {
      const dir = join(root, d);
      if (liveIds.has(d)) continue;
      const owner = Number(d.split('-')[1]);
      const start = Number(d.split('-')[2]);
      if (Number.isInteger(owner) && Number.isInteger(start) && isSameProcessAlive(owner, start)) continue;
      log.debug({ dir }, 'reaping orphaned VM directory');
      await rm(dir, { recursive: true, force: true });
    }
  }
  return reaped;
}

/** Temporary files and half-built artifacts (".NAME.PID-START.partial|tmp") whose writer died. */
async function reapPartials(dir: string, log: Logger, prefix = '.', ownerUid?: number): Promise<void> {
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!f.startsWith(prefix) || !/\.(partial|tmp)$/.test(f) || ownerAlive(f)) continue;
    if (ownerUid !== undefined && !(await lstat(join(dir, f)).then((s) => s.isDirectory() && s.uid === ownerUid, () => false))) continue;
    log.debug({ path: join(dir, f) }, 'reaping a leftover of a killed writer');
    await removeTree(join(dir, f)).catch(() => {});
  }
}

/**
 * True if the VM id "HEX-PID-START" names a live supervisor. Liveness is read from the
 * id itself, not from a list of state files taken earlier: a VM that claimed its name
 * a moment ago may be setting up its namespace right now.
 */
export function idAlive(id: string): boolean {
  const [, pid, start] = id.split('-');
  return Number.isInteger(Number(pid)) && Number.isInteger(Number(start)) && isSameProcessAlive(Number(pid), Number(start));
}

/**
 * Network leftovers of VMs that are gone: namespaces named fcvm-ID and iptables rules
 * labelled fcvm:ID whose ID names a dead supervisor (one killed mid-setup, say).
 */
async function reapNetwork(log: Logger): Promise<void> {
  for (const ns of await hostNetOps.listNetns().catch(() => [] as string[])) {
    if (!ns.startsWith('fcvm-') || idAlive(ns.slice(5))) continue;
    log.debug({ ns }, 'reaping orphaned network namespace');
    await hostNetOps.deleteNetns(ns).catch(() => {});
  }
  const save = await hostNetOps.iptablesSave().catch(() => '');
  const ids = new Set([...save.matchAll(/fcvm:([0-9a-z-]+)/g)].map((m) => m[1]!));
  const stale = staleRules(save, new Set([...ids].filter(idAlive)));
  if (stale.length === 0) return;
  log.debug({ rules: stale.length }, 'reaping orphaned iptables rules');
  // One by one: a rule that vanished meanwhile must not stop the others.
  for (const r of stale) await hostNetOps.iptablesApply([r]).catch(() => {});
}

/** RAM files in /dev/shm of VMs whose supervisor is gone (the id names it). */
async function reapMemoryFiles(log: Logger): Promise<void> {
  for (const f of await readdir(SHM).catch(() => [] as string[])) {
    if (!f.startsWith(MEMORY_FILE_PREFIX) || idAlive(f.slice(MEMORY_FILE_PREFIX.length))) continue;
    log.debug({ file: f }, 'reaping the RAM file of a dead VM');
    await rm(join(SHM, f), { force: true }).catch(() => {});
  }
}

/**
 * True if `pid`'s command line mentions `runDir` (QEMU) or the VM id (Firecracker's
 * --id), i.e. it is that VM's VMM and not a reused PID.
 */
function isVmm(pid: number, runDir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return argv.includes(runDir) || argv.split('\0').includes(runDir.slice(runDir.lastIndexOf('/') + 1));
  } catch {
    return false;
  }
}
