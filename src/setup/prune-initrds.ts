/**
 * Initrds that later setups replaced. Each fcvm build makes its own (the agent is in it:
 * about 12 MB, twice with the nested profile), content-addressed, so upgrades would pile
 * them up. Only a cold boot reads an initrd (a clone or a startup snapshot's restore does
 * not), so one that no manifest names is dead once no boot can still be reading it.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Manifest } from './manifest.js';

const INITRD_DIR = /^initrd-(nested-)?[0-9a-f]{16}$/;

export interface ArtifactDir {
  name: string;
  mtimeMs: number;
}

/**
 * The initrd directories to remove: those the manifest does not name, except the newest
 * of each profile, kept for a boot that read the manifest just before setup changed it
 * (another user's, too: ordinary users boot from root's artifacts). Pure.
 */
export function staleInitrds(entries: readonly ArtifactDir[], current: readonly string[]): string[] {
  const byProfile = new Map<string, ArtifactDir[]>();
  for (const e of entries) {
    const m = INITRD_DIR.exec(e.name);
    if (!m || current.includes(e.name)) continue;
    const profile = m[1] ?? '';
    byProfile.set(profile, [...(byProfile.get(profile) ?? []), e]);
  }
  return [...byProfile.values()].flatMap((list) => list.sort((a, b) => b.mtimeMs - a.mtimeMs).slice(1).map((e) => e.name)).sort();
}

/** Removes the stale initrds of `artifacts` (see staleInitrds); returns their names and bytes. */
export async function pruneInitrds(artifacts: string, manifest: Manifest): Promise<{ removed: string[]; bytes: number }> {
  const current = [manifest.initrd.path, ...(manifest.nested ? [manifest.nested.initrd.path] : [])].map((p) => basename(dirname(p)));
  const entries: ArtifactDir[] = [];
  for (const name of await readdir(artifacts)) {
    if (!INITRD_DIR.test(name)) continue;
    const st = await stat(join(artifacts, name)).catch(() => undefined);
    if (st?.isDirectory()) entries.push({ name, mtimeMs: st.mtimeMs });
  }
  const removed = staleInitrds(entries, current);
  let bytes = 0;
  for (const name of removed) {
    const dir = join(artifacts, name);
    for (const f of await readdir(dir).catch(() => [] as string[])) bytes += (await stat(join(dir, f)).catch(() => undefined))?.size ?? 0;
    await rm(dir, { recursive: true, force: true });
  }
  return { removed, bytes };
}
