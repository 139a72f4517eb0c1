import { readFileSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../util/log.js';
import { isSameProcessAlive, processStartTime } from '../util/proc.js';
import { isOwnerAlive, type StateStore } from './store.js';

/**
 * Removes what dead supervisors left behind: state files whose owner is gone, their
 * VMM if it somehow survived, and run directories no live VM owns. Every command calls it.
 */
export async function reapStale(store: StateStore, runRoot: string, log: Logger): Promise<string[]> {
  const reaped: string[] = [];
  const liveRunDirs = new Set<string>();
  for (const entry of await store.list()) {
    if (!entry.ok) {
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
    if (s.vmmPid && processStartTime(s.vmmPid) !== undefined && isVmm(s.vmmPid, s.runDir)) {
      try {
        process.kill(s.vmmPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await rm(s.runDir, { recursive: true, force: true });
    await store.remove(s.name);
    reaped.push(s.name);
  }
  // Run directories that no state file claims (a supervisor killed before it wrote one).
  for (const d of await readdir(runRoot).catch(() => [] as string[])) {
    const dir = join(runRoot, d);
    if (liveRunDirs.has(dir)) continue;
    const owner = Number(d.split('-')[1]);
    const start = Number(d.split('-')[2]);
    if (Number.isInteger(owner) && Number.isInteger(start) && isSameProcessAlive(owner, start)) continue;
    log.debug({ dir }, 'reaping orphaned run directory');
    await rm(dir, { recursive: true, force: true });
  }
  return reaped;
}

/** True if `pid`'s command line mentions `runDir`, i.e. it is that VM's VMM and not a reused PID. */
function isVmm(pid: number, runDir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(runDir);
  } catch {
    return false;
  }
}
