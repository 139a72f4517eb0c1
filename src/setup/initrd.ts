import { chmod, copyFile, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { run } from '../util/exec.js';
import { parseModulesDep, resolveModules } from './modules.js';

/** The modules the guest loads at boot; their dependencies are added by depmod's index. */
export const GUEST_MODULES = [
  'virtio_mmio',
  'virtio_blk',
  'virtio_console',
  'virtio_net',
  'virtio_rng',
  'virtio_balloon',
  'overlay',
  'fuse',
  'vmw_vsock_virtio_transport',
] as const;

export interface InitrdInputs {
  busybox: string;
  modulesDir: string;
  initScript: string;
  stage2Script: string;
  agentBundle: string;
  /** The guest's native programs (guest-programs.ts), each put at /fcvm/NAME. */
  programs: { name: string; path: string }[];
  /** The hostile agent for defence tests, copied beside the agent. */
  hostileAgentBundle: string;
  nodeFlags: string;
  /** node_modules directories the agent needs at run time (native addons), copied to /fcvm/node_modules. */
  agentModules: { name: string; dir: string }[];
  /** Modules of the kernel profile, loaded after the required ones when present (kvm_amd or kvm_intel). */
  optionalModules?: readonly string[];
}

/**
 * Builds an uncompressed newc cpio (unpacking is cheaper than decompressing under
 * emulation) holding busybox, the needed modules in load order, the init, and the agent.
 */
export async function buildInitrd(inputs: InitrdInputs, outFile: string, tree: string): Promise<void> {
  const deps = parseModulesDep(await readFile(join(inputs.modulesDir, 'modules.dep'), 'utf8'));
  const optional = inputs.optionalModules ?? [];
  const { order } = resolveModules(deps, [...GUEST_MODULES, ...optional]);
  for (const d of ['bin', 'dev', 'proc', 'sys', 'newroot', 'etc', 'fcvm', 'lib/modules']) {
    await mkdir(join(tree, d), { recursive: true });
  }
  await copyFile(inputs.busybox, join(tree, 'bin', 'busybox'));
  await chmod(join(tree, 'bin', 'busybox'), 0o755);
  await copyFile(inputs.initScript, join(tree, 'init'));
  await chmod(join(tree, 'init'), 0o755);
  // The modules under lib/modules/VERSION with their own depmod index, for busybox modprobe.
  const version = basename(inputs.modulesDir);
  const modRoot = join(tree, 'lib', 'modules', version);
  for (const m of order) {
    await mkdir(dirname(join(modRoot, m)), { recursive: true });
    await copyFile(join(inputs.modulesDir, m), join(modRoot, m));
  }
  await run('depmod', ['-b', tree, version]);
  await writeFile(join(tree, 'etc', 'fcvm-modules'), GUEST_MODULES.join(' ') + '\n');
  await writeFile(join(tree, 'etc', 'fcvm-modules-optional'), optional.join(' ') + '\n');
  await copyFile(inputs.stage2Script, join(tree, 'fcvm', 'stage2'));
  await copyFile(inputs.agentBundle, join(tree, 'fcvm', 'agent.mjs'));
  for (const p of inputs.programs) {
    await copyFile(p.path, join(tree, 'fcvm', p.name));
    await chmod(join(tree, 'fcvm', p.name), 0o755);
  }
  await copyFile(inputs.hostileAgentBundle, join(tree, 'fcvm', 'hostile-agent.mjs'));
  await writeFile(join(tree, 'fcvm', 'node-flags'), inputs.nodeFlags + '\n');
  for (const m of inputs.agentModules) {
    await cp(m.dir, join(tree, 'fcvm', 'node_modules', m.name), {
      recursive: true,
      filter: (src) => !/\/(doc|vendor|musl_x64|CHANGELOG\.md|README\.md)$/.test(src),
    });
  }
  await run('sh', ['-c', 'find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 > "$1"', 'sh', outFile], { cwd: tree });
}
