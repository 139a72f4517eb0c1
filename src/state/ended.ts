import { appendFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exitCodeInLog } from '../logs/read-log.js';
import { logOwnerAlive, logStamp, parseRecordName, recordPath } from '../logs/vm-log.js';
import { writeFileAtomic } from '../util/fs-atomic.js';
import { VmStateSchema, withStatus, type VmState } from './vm-state.js';

/**
 * An ended VM, as podman keeps an exited container until `rm`: its last state, beside
 * its kept log (NAME.ID.json next to NAME.ID.log), so that `ps -a`, `inspect`, `logs`
 * and `wait` still answer for it. It goes with its log: by `rm`, by a new VM of the
 * same name, or after KEEP_ENDED_LOG_MS.
 */

/** Writes the record of a VM that ended, from its last state. `fallbackExit` is used when no exit code was recorded. */
export async function writeEndedRecord(s: VmState, why?: string, fallbackExit?: number): Promise<void> {
  if (!s.log?.keep) return;
  const recorded = s.exitCode ?? exitCodeInLog(s.log.path);
  const exitCode = recorded ?? fallbackExit;
  const ended = s.status === 'stopped' ? s : withStatus(s, 'stopped', why ?? (recorded === undefined ? 'the VM ended before its container did' : `exit code ${recorded}`));
  await writeFileAtomic(recordPath(s.log.path), JSON.stringify({ ...ended, ...(exitCode !== undefined ? { exitCode } : {}) }, null, 2) + '\n');
}

/** Adds a stamped line of fcvm's to a kept VM's log (why it ended), after what its supervisor wrote. */
export function noteInLog(path: string, line: string): void {
  try {
    appendFileSync(path, `${logStamp(Date.now())}fcvm: ${line}\n`, { mode: 0o600 });
  } catch {
    // A log that cannot take the line still has the record.
  }
}

/** The VMs that ended and were kept, newest first; with `name`, only those of that name. */
export async function endedVms(logsDir: string, name?: string): Promise<VmState[]> {
  const out: VmState[] = [];
  for (const f of await readdir(logsDir).catch(() => [] as string[])) {
    const p = parseRecordName(f);
    if (!p || (name !== undefined && p.name !== name) || logOwnerAlive(p.id)) continue;
    const parsed = VmStateSchema.safeParse(await readFile(join(logsDir, f), 'utf8').then((t) => JSON.parse(t) as unknown).catch(() => undefined));
    if (parsed.success && parsed.data.name === p.name) out.push(parsed.data);
  }
  return out.sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
}
