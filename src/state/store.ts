import { mkdir, readdir, readFile, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import { createFileExclusive, writeFileAtomic } from '../util/fs-atomic.js';
import { isSameProcessAlive } from '../util/proc.js';
import { STATE_SCHEMA, VmStateSchema, type VmState } from './vm-state.js';

export type LoadedState = { ok: true; state: VmState; path: string } | { ok: false; path: string; why: string; future?: boolean };

/**
 * One JSON file per VM under `dir`, named after the VM. Files are written atomically;
 * a name is claimed with an exclusive link, so two starts of the same name cannot both win.
 */
export class StateStore {
  constructor(readonly dir: string) {}

  pathOf(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  /** Claims `state.name`. Returns the live owner's state if the name is taken. */
  async claim(state: VmState): Promise<VmState | undefined> {
    await mkdir(this.dir, { recursive: true });
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await createFileExclusive(this.pathOf(state.name), serialize(state))) return undefined;
      const existing = await this.load(state.name);
      if (existing.ok && isOwnerAlive(existing.state)) return existing.state;
      if (!existing.ok && existing.future) throw errors.stateCorrupt(existing.path, existing.why);
      // The owner is gone (or the file is unreadable): the next command reaps it.
      if (existing.ok) await rm(existing.path, { force: true });
      else if (!existing.ok && existing.why !== 'missing') await rm(existing.path, { force: true });
    }
    throw errors.stateCorrupt(this.pathOf(state.name), 'could not claim the name after 3 tries');
  }

  async update(state: VmState): Promise<void> {
    await writeFileAtomic(this.pathOf(state.name), serialize(state));
  }

  async remove(name: string): Promise<void> {
    await unlink(this.pathOf(name)).catch(() => {});
  }

  async load(name: string): Promise<LoadedState> {
    const path = this.pathOf(name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return { ok: false, path, why: 'missing' };
    }
    try {
      const raw = JSON.parse(text) as { schema?: unknown };
      // A newer fcvm's file: not ours to read, nor to remove (its VM may be running).
      if (typeof raw?.schema === 'number' && raw.schema > STATE_SCHEMA) return { ok: false, path, why: `it was written by a newer fcvm (state schema ${raw.schema}, this fcvm reads ${STATE_SCHEMA})`, future: true };
      const parsed = VmStateSchema.safeParse(raw);
      if (parsed.success) return { ok: true, state: parsed.data, path };
      return { ok: false, path, why: `schema mismatch: ${parsed.error.issues[0]?.message}` };
    } catch (e) {
      return { ok: false, path, why: (e as Error).message };
    }
  }

  async list(): Promise<LoadedState[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: LoadedState[] = [];
    for (const f of names.filter((n) => n.endsWith('.json') && !n.startsWith('.'))) {
      out.push(await this.load(f.slice(0, -5)));
    }
    return out;
  }
}

export function isOwnerAlive(s: VmState): boolean {
  return isSameProcessAlive(s.pid, s.pidStartTime);
}

function serialize(s: VmState): string {
  return JSON.stringify(s, null, 2) + '\n';
}
