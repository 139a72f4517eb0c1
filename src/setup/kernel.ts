import { readdir, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { extractDeb } from './debs.js';

/** Files of the kernel artifact directory. */
export const kernelFiles = {
  vmlinuz: 'vmlinuz',
  version: 'version',
  modulesRoot: 'modules',
} as const;

/**
 * Builds the kernel artifact from a linux-image .deb: the bzImage (QEMU boots it
 * directly) and the module tree with depmod's index, which Debian's .deb lacks.
 */
export async function buildKernel(deb: string, dir: string): Promise<string> {
  const x = join(dir, 'extract');
  await extractDeb(deb, x);
  const versions = await readdir(join(x, 'lib', 'modules'));
  const version = versions[0];
  if (!version || versions.length !== 1) throw new Error(`expected one kernel version in the .deb, found ${versions.join(', ')}`);
  await rename(join(x, 'boot', `vmlinuz-${version}`), join(dir, kernelFiles.vmlinuz));
  await mkdir(join(dir, kernelFiles.modulesRoot, 'lib', 'modules'), { recursive: true });
  await rename(join(x, 'lib', 'modules', version), join(dir, kernelFiles.modulesRoot, 'lib', 'modules', version));
  await rm(x, { recursive: true, force: true });
  await run('depmod', ['-b', join(dir, kernelFiles.modulesRoot), version]);
  await writeFile(join(dir, kernelFiles.version), version + '\n');
  return version;
}

export function modulesDir(kernelDir: string, version: string): string {
  return join(kernelDir, kernelFiles.modulesRoot, 'lib', 'modules', version);
}
