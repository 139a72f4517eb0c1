import { chmod, copyFile, cp, mkdir, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { run } from '../util/exec.js';
import { NESTED_FCVM_LINK, NESTED_NODE_PATH, type ProfileRecipe } from './kernel-profile.js';

/**
 * Adds a kernel profile's files to a root filesystem tree: the kernel's module tree with
 * its depmod index (so the guest kernel loads TAP, veth and netfilter modules on demand
 * through the rootfs's modprobe), and the Node runtime that runs setup.
 */
export async function addProfileFiles(recipe: ProfileRecipe, tree: string, from: { modulesDir: string; node: string }): Promise<void> {
  if (recipe.moduleTree) {
    const version = basename(from.modulesDir);
    await mkdir(join(tree, 'lib', 'modules'), { recursive: true });
    await cp(from.modulesDir, join(tree, 'lib', 'modules', version), { recursive: true });
    await run('depmod', ['-b', tree, version]);
  }
  if (recipe.hostNode) {
    const dest = join(tree, NESTED_NODE_PATH);
    await mkdir(dirname(dest), { recursive: true });
    await copyFile(from.node, dest);
    await chmod(dest, 0o755);
  }
  if (recipe.fcvmLink) {
    await mkdir(dirname(join(tree, NESTED_FCVM_LINK.path)), { recursive: true });
    await symlink(NESTED_FCVM_LINK.target, join(tree, NESTED_FCVM_LINK.path));
  }
}
