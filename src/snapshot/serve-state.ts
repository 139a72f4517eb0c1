import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod/mini';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import { isSameProcessAlive, processStartTime } from '../util/proc.js';

export const SERVE_SCHEMA = 1;

/** One running `fcvm snapshot serve`: written once it listens, removed when it ends. */
export const ServeStateSchema = z.object({
  schema: z.literal(SERVE_SCHEMA),
  pid: z.int(),
  pidStartTime: z.int(),
  tag: z.string(),
  socket: z.string(),
  /** The snapshot's memory file, which clones map (QEMU, or Firecracker without userfaultfd). */
  memory: z.object({ kind: z.literal('file'), path: z.string() }),
  /** It serves memory by userfaultfd too (a Firecracker snapshot). */
  uffd: z.optional(z.boolean()),
  startedAt: z.string(),
});
export type ServeState = z.infer<typeof ServeStateSchema>;

export const serveStatePath = (layout: Layout, pid: number) => join(layout.serveState, `${pid}.json`);
export const serveSocketPath = (layout: Layout, pid: number) => join(layout.serveState, `${pid}.sock`);

/** The live server with this PID, or undefined. */
export async function loadServe(layout: Layout, pid: number): Promise<ServeState | undefined> {
  try {
    const parsed = ServeStateSchema.safeParse(JSON.parse(await readFile(serveStatePath(layout, pid), 'utf8')));
    return parsed.success && isSameProcessAlive(parsed.data.pid, parsed.data.pidStartTime) ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Every live server; the files of dead ones are removed on the way. */
export async function listServes(layout: Layout, log?: Logger): Promise<ServeState[]> {
  const out: ServeState[] = [];
  const files = await readdir(layout.serveState).catch(() => [] as string[]);
  for (const f of files) {
    // A socket without a state file: its server died before it was ready.
    const sock = f.match(/^(\d+)\.sock$/);
    if (sock && !files.includes(`${sock[1]}.json`) && processStartTime(Number(sock[1])) === undefined) {
      await rm(join(layout.serveState, f), { force: true });
    }
    const m = f.match(/^(\d+)\.json$/);
    if (!m) continue;
    const pid = Number(m[1]);
    const s = await loadServe(layout, pid);
    if (s) out.push(s);
    else {
      log?.debug({ pid }, 'reaping the state of a dead memory server');
      await rm(serveStatePath(layout, pid), { force: true });
      await rm(serveSocketPath(layout, pid), { force: true });
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}
