import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { assetPath } from '../util/package-root.js';

/**
 * The guest's FUSE relay (assets/guest/fuse-relay/, see src/agent/fuse-relay.ts) is
 * compiled on the host by `fcvm setup` into a static binary in the initrd: no compiler,
 * library or loader is needed in the guest, and the guest's kernel is the only ABI.
 */
export const RELAY_FLAGS = ['-static', '-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-fno-strict-aliasing'] as const;

export const relaySourceDir = () => assetPath('guest', 'fuse-relay');

/** The relay's sources, sorted by name: part of the initrd's content address. */
export async function relaySources(dir = relaySourceDir()): Promise<{ name: string; text: string }[]> {
  const names = (await readdir(dir)).filter((n) => /\.[ch]$/.test(n)).sort();
  return Promise.all(names.map(async (name) => ({ name, text: await readFile(join(dir, name), 'utf8') })));
}

/** The compiler as `cc --version` names it: another compiler is another binary. */
export async function compilerVersion(): Promise<string> {
  return (await run('cc', ['--version'])).split('\n')[0]!.trim();
}

/** Compiles the relay to `out`. */
export async function buildRelay(out: string, dir = relaySourceDir()): Promise<void> {
  const sources = (await relaySources(dir)).filter((s) => s.name.endsWith('.c')).map((s) => join(dir, s.name));
  await run('cc', [...RELAY_FLAGS, '-o', out, ...sources]);
}
