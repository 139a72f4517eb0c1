import { existsSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as z from 'zod/mini';
import { run } from '../../util/exec.js';
import { writeFileAtomic } from '../../util/fs-atomic.js';
import { MICROVM_FIRMWARE } from './command.js';

/** The host files a jailed QEMU needs, as its jail shows them: real files, and the symlinks that lead to them. */
export interface HostFiles {
  files: string[];
  symlinks: { path: string; target: string }[];
}

const CacheSchema = z.object({ key: z.string(), files: z.array(z.string()), symlinks: z.array(z.object({ path: z.string(), target: z.string() })) });

/** Where QEMU keeps its loadable modules (TCG is one in Debian's 7.2, built in since) and its firmware. */
const MODULE_DIRS = ['/usr/lib/x86_64-linux-gnu/qemu', '/usr/lib64/qemu', '/usr/lib/qemu'];
const DATA_DIRS = ['/usr/share/qemu'];
/** The microvm machine's firmware (qboot, which command.ts names with -bios). */
const FIRMWARE = [MICROVM_FIRMWARE];

/**
 * What the jail must hold for `programs` (QEMU and setpriv): each binary, every shared
 * library the loader resolves for it (from `ldd`), QEMU's TCG accelerator module and the
 * microvm firmware, with each symlink on the way kept as a symlink. Nothing else of /usr.
 * The list is cached in `cacheFile`, keyed by the programs' inodes and mtimes.
 */
export async function hostFiles(programs: readonly string[], cacheFile: string | undefined): Promise<HostFiles> {
  const moduleDir = MODULE_DIRS.find((d) => existsSync(join(d, 'accel-tcg-x86_64.so')));
  const extra = [
    ...(moduleDir ? [join(moduleDir, 'accel-tcg-x86_64.so')] : []),
    ...DATA_DIRS.flatMap((d) => FIRMWARE.map((f) => join(d, f))).filter((p) => existsSync(p)),
  ];
  const key = [...programs, ...extra].map((p) => {
    const s = statSync(p);
    return `${p}:${s.ino}:${s.mtimeMs}:${s.size}`;
  }).join('|');
  const cached = cacheFile ? await readFile(cacheFile, 'utf8').then((t) => CacheSchema.safeParse(JSON.parse(t)).data, () => undefined) : undefined;
  if (cached?.key === key) return { files: cached.files, symlinks: cached.symlinks };
  const libs = parseLdd(await run('ldd', [...programs, ...extra.filter((p) => p.endsWith('.so'))]));
  const out = resolveAll([...programs, ...extra, ...libs]);
  if (cacheFile) await writeFileAtomic(cacheFile, JSON.stringify({ key, ...out }) + '\n').catch(() => {});
  return out;
}

/** The library paths in `ldd` output (several programs' worth). Pure. */
export function parseLdd(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const m = line.match(/=>\s*(\/\S+)\s+\(/) ?? line.match(/^\s*(\/\S+)\s+\(/);
    if (m) out.add(m[1]!);
  }
  return [...out];
}

/**
 * Each path as the jail must show it: every symlink met on the way (directories such
 * as /lib -> usr/lib included, and the file's own), and the real file at the end.
 */
function resolveAll(paths: readonly string[]): HostFiles {
  const files = new Set<string>();
  const symlinks = new Map<string, string>();
  for (const p of paths) files.add(walk(p, symlinks, 0));
  return { files: [...files].sort(), symlinks: [...symlinks].map(([path, target]) => ({ path, target })).sort((a, b) => a.path.localeCompare(b.path)) };
}

/** Resolves `path` component by component, recording each symlink in `symlinks`. */
function walk(path: string, symlinks: Map<string, string>, depth: number): string {
  if (depth > 32) throw new Error(`too many symlinks at ${path}`);
  const parts = path.split('/').filter(Boolean);
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const next = join(cur, parts[i]!);
    if (lstatSync(next).isSymbolicLink()) {
      const target = readlinkSync(next);
      symlinks.set(next, target);
      return walk(join(resolve(cur, target), ...parts.slice(i + 1)), symlinks, depth + 1);
    }
    cur = next;
  }
  return cur;
}
