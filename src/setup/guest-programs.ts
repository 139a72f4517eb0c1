import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { assetPath } from '../util/package-root.js';

/**
 * The guest's native programs, each compiled on the host by `fcvm setup` from
 * assets/guest/NAME/ into a static binary in the initrd (the guest finds it at
 * /run/fcvm/NAME): no compiler, library or loader is needed in the guest, and the
 * guest's kernel is the only ABI.
 * - fuse-relay: the guest's end of volumes (src/agent/fuse-relay.ts);
 * - exec-spawner: starts execs inside the container (src/agent/exec-spawner.ts).
 */
export const GUEST_PROGRAMS = ['fuse-relay', 'exec-spawner'] as const;
export type GuestProgram = (typeof GUEST_PROGRAMS)[number];

export const PROGRAM_FLAGS = ['-static', '-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-fno-strict-aliasing'] as const;

const sourceDir = (program: GuestProgram) => assetPath('guest', program);

/** A program's sources, sorted by name: part of the initrd's content address. */
export async function programSources(program: GuestProgram): Promise<{ name: string; text: string }[]> {
  const dir = sourceDir(program);
  const names = (await readdir(dir)).filter((n) => /\.[ch]$/.test(n)).sort();
  return Promise.all(names.map(async (name) => ({ name, text: await readFile(join(dir, name), 'utf8') })));
}

/** The compiler as `cc --version` names it: another compiler is another binary. */
export async function compilerVersion(): Promise<string> {
  return (await run('cc', ['--version'])).split('\n')[0]!.trim();
}

/** Compiles `program` to `out`. */
export async function buildProgram(program: GuestProgram, out: string): Promise<void> {
  const sources = (await programSources(program)).filter((s) => s.name.endsWith('.c')).map((s) => join(sourceDir(program), s.name));
  await run('cc', [...PROGRAM_FLAGS, '-o', out, ...sources]);
}
