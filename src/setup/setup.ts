import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { machineFault } from '../errors/os-fault.js';
import { withFileLock } from '../util/file-lock.js';
import type { Logger } from '../util/log.js';
import { agentBundlePath, assetPath, hostileAgentBundlePath, packageRoot } from '../util/package-root.js';
import { ensureArtifact, hashFile, hashInputs } from './content-address.js';
import { debInfo, extractDeb, fetchDeb, kernelDebInfo } from './debs.js';
import { buildInitrd, GUEST_MODULES } from './initrd.js';
import { buildProgram, compilerVersion, GUEST_PROGRAMS, PROGRAM_FLAGS, programSources } from './guest-programs.js';
import { buildKernel, kernelFiles, modulesDir } from './kernel.js';
import type { Layout } from './layout.js';
import { MANIFEST_SCHEMA, readManifest, writeManifest, type Manifest } from './manifest.js';
import { preflight, SETUP_CHECKS } from './preflight.js';
import { reapLeftovers } from '../state/reaper.js';
import { isOwnerAlive, StateStore } from '../state/store.js';
import { pruneInitrds } from './prune-initrds.js';
import { buildRootfs, hostDebianMirror, ROOTFS_PACKAGES, ROOTFS_SIZE, ROOTFS_SUITE } from './rootfs.js';
import { extractVmlinux } from './vmlinux.js';
import { NESTED_FCVM_LINK, PROFILE_RECIPES, type KernelProfile } from './kernel-profile.js';
import { addProfileFiles } from './profile-files.js';
import { layoutFor } from './layout.js';
import { createReflinkFs, ensureReflinkFs } from '../disks/reflink-fs.js';
import { prepareRawBaseDisk } from '../disks/base-disk.js';
import { canReflink } from '../disks/reflink.js';

/** Bump to rebuild an artifact kind when its recipe (code, not inputs) changes. */
const RECIPE = { kernel: 1, initrd: 3, rootfs: 1, vmlinux: 1 } as const;

/** Node flags for the guest agent; part of the initrd's content address. */
export const GUEST_NODE_FLAGS = '--max-semi-space-size=16';

/** The agent's native dependencies (koffi, for PTYs), found in fcvm's own node_modules. */
function guestNodeModules(): { name: string; dir: string }[] {
  const nm = join(packageRoot(), 'node_modules');
  return [
    { name: 'koffi', dir: join(nm, 'koffi') },
    { name: '@koromix/koffi-linux-x64', dir: join(nm, '@koromix', 'koffi-linux-x64') },
  ];
}

export interface SetupOptions {
  layout: Layout;
  force: boolean;
  log: Logger;
  /** One line of progress for a person watching. */
  progress: (line: string) => void;
  /** A passing state (the package being fetched), shown in place on a terminal. */
  live?: (line: string) => void;
  /** Create a loop-mounted btrfs of this many bytes under the base dir for raw disks. */
  reflinkFsBytes?: number;
  /**
   * Kernel profiles to build besides the default one (which inner VMs and every other
   * VM use). Profiles the current manifest has are kept up to date whether named or not.
   */
  profiles?: readonly KernelProfile[];
}

/**
 * Builds (or finds) the kernel, initrd and rootfs, each content-addressed by the hash
 * of its inputs, then points the manifest at them. A second run only hashes inputs.
 */
export async function setup(opts: SetupOptions): Promise<Manifest> {
  await preflight(SETUP_CHECKS);
  const { layout } = opts;
  try {
    await mkdir(layout.artifacts, { recursive: true });
    // Two setups at once: the second waits, then finds the first one's work done.
    return await withFileLock(join(layout.locks, 'setup.lock'), () => setupLocked(opts), 3_600_000, () => opts.progress('waiting for another "fcvm setup" to finish'));
  } catch (e) {
    throw machineFault(e, 'setting up', layout.base) ?? e;
  }
}

async function setupLocked(opts: SetupOptions): Promise<Manifest> {
  const { layout, force, progress } = opts;
  // Half-built artifacts of a killed setup go first.
  await reapLeftovers(layout, opts.log);
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw machineFault(e, `running setup step "${name}"`, layout.base) ?? (isFcvmError(e) && e.code !== 'COMMAND_FAILED' ? e : errors.setupFailed(name, e));
    }
  };

  const [kernelDeb, busyboxDeb] = await step('resolve packages', () => Promise.all([kernelDebInfo(), debInfo('busybox-static')]));

  const kernelHash = hashInputs(RECIPE.kernel, kernelDeb.sha256);
  const kernel = await step('kernel', () =>
    ensureArtifact(layout.artifacts, 'kernel', kernelHash, force, async (dir) => {
      progress(`kernel: downloading ${kernelDeb.name} ${kernelDeb.version}`);
      const deb = await fetchDeb(kernelDeb, layout.debs);
      progress('kernel: extracting and indexing modules');
      await buildKernel(deb, dir);
    }),
  );
  const kernelVersion = (await readFile(join(kernel.dir, kernelFiles.version), 'utf8')).trim();
  // Firecracker boots the ELF inside the same bzImage.
  const vmlinuxHash = hashInputs(RECIPE.vmlinux, kernelHash);
  const vmlinux = await step('vmlinux', () =>
    ensureArtifact(layout.artifacts, 'vmlinux', vmlinuxHash, force, async (dir) => {
      progress('vmlinux: extracting the ELF kernel from the bzImage (for Firecracker)');
      await extractVmlinux(join(kernel.dir, kernelFiles.vmlinuz), join(dir, 'vmlinux'));
    }),
  );

  const agent = agentBundlePath();
  const agentHash = await step('agent bundle', () => hashFile(agent).catch(() => {
    throw errors.preflight('agent bundle', `${agent} is missing`, 'Run "npm run build" in the fcvm checkout');
  }));
  const hostileAgent = hostileAgentBundlePath();
  const hostileHash = await step('agent bundle', () => hashFile(hostileAgent).catch(() => {
    throw errors.preflight('agent bundle', `${hostileAgent} is missing`, 'Run "npm run build" in the fcvm checkout');
  }));
  const initScript = assetPath('guest', 'init');
  const stage2Script = assetPath('guest', 'stage2');
  const agentModules = guestNodeModules();
  // The fuse relay alone was hashed as [sources, compiler, flags]; the others follow it.
  const programInputs = await step('guest programs', async () => [
    await programSources('fuse-relay'), await compilerVersion(), PROGRAM_FLAGS, await programSources('exec-spawner'),
  ]);
  const initrdFor = (profile: KernelProfile) => {
    const optional = PROFILE_RECIPES[profile].optionalModules;
    const kind = profile === 'default' ? 'initrd' : `initrd-${profile}`;
    return async () => {
      // The default profile's inputs are hashed as before profiles existed (no rebuild).
      const hash = hashInputs(
        RECIPE.initrd, kernelHash, busyboxDeb.sha256, agentHash, hostileHash, GUEST_MODULES, GUEST_NODE_FLAGS, programInputs,
        await Promise.all(agentModules.map((m) => readFile(join(m.dir, 'package.json'), 'utf8'))),
        await readFile(initScript, 'utf8'), await readFile(stage2Script, 'utf8'),
        ...(optional.length > 0 ? [optional] : []),
      );
      const built = await step(kind, () =>
        ensureArtifact(layout.artifacts, kind, hash, force, async (dir) => {
          progress(`${kind}: busybox, modules, agent, ${GUEST_PROGRAMS.join(', ')}`);
          const bb = join(dir, 'busybox-deb');
          const programs = GUEST_PROGRAMS.map((name) => ({ name, path: join(dir, name) }));
          for (const p of programs) await buildProgram(p.name, p.path);
          await extractDeb(await fetchDeb(busyboxDeb, layout.debs), bb);
          await buildInitrd(
            {
              busybox: join(bb, 'bin', 'busybox'), modulesDir: modulesDir(kernel.dir, kernelVersion), initScript, stage2Script, agentBundle: agent, programs,
              hostileAgentBundle: hostileAgent, nodeFlags: GUEST_NODE_FLAGS, agentModules, optionalModules: optional,
            },
            join(dir, 'initrd.cpio'),
            join(dir, 'tree'),
          );
          await rm(bb, { recursive: true, force: true });
          for (const p of programs) await rm(p.path, { force: true });
          await rm(join(dir, 'tree'), { recursive: true, force: true });
        }),
      );
      return { hash, built, path: join(built.dir, 'initrd.cpio') };
    };
  };
  const initrdBuild = await initrdFor('default')();
  const initrd = initrdBuild.built;
  const initrdHash = initrdBuild.hash;

  const configDir = assetPath('rootfs');
  const configs = [await readFile(join(configDir, 'containers.conf'), 'utf8'), await readFile(join(configDir, 'storage.conf'), 'utf8')];
  const rootfsFor = async (profile: KernelProfile) => {
    const recipe = PROFILE_RECIPES[profile];
    const kind = profile === 'default' ? 'rootfs' : `rootfs-${profile}`;
    // The default profile's inputs are hashed as before profiles existed (no rebuild).
    const extra = profile === 'default' ? [] : [
      profile, recipe, ...(recipe.fcvmLink ? [NESTED_FCVM_LINK] : []), ...(recipe.moduleTree ? [kernelHash] : []),
      ...(recipe.hostNode ? [await hashFile(process.execPath)] : []),
    ];
    const hash = hashInputs(RECIPE.rootfs, ROOTFS_SUITE, ROOTFS_PACKAGES, ROOTFS_SIZE, ...configs, ...extra);
    const built = await step(kind, () =>
      ensureArtifact(layout.artifacts, kind, hash, force, async (dir) => {
        const mirror = await hostDebianMirror();
        const t0 = Date.now();
        progress(`${kind}: debootstrap ${ROOTFS_SUITE} from ${mirror} (about a minute)`);
        await buildRootfs(
          {
            mirror, configDir,
            onProgress: (l) => progress(`${kind}: ${l}`),
            onLive: (l) => opts.live?.(`${kind}: ${l} (${Math.round((Date.now() - t0) / 1000)}s)`),
            extraPackages: recipe.extraPackages,
            addFiles: (tree) => addProfileFiles(recipe, tree, { modulesDir: modulesDir(kernel.dir, kernelVersion), node: process.execPath }),
          },
          join(dir, 'rootfs.ext4'),
          join(dir, 'tree'),
        );
        await rm(join(dir, 'tree'), { recursive: true, force: true });
      }),
    );
    return { hash, built, path: join(built.dir, 'rootfs.ext4') };
  };
  const rootfsBuild = await rootfsFor('default');
  const rootfs = rootfsBuild.built;
  const rootfsHash = rootfsBuild.hash;

  const old = await readManifest(layout);
  const wantNested = (opts.profiles ?? []).includes('nested') || old?.nested !== undefined;
  let nested: Manifest['nested'];
  if (wantNested) {
    const ni = await initrdFor('nested')();
    const nr = await rootfsFor('nested');
    nested = { initrd: { hash: ni.hash, path: ni.path }, rootfs: { hash: nr.hash, path: nr.path } };
    progress(`nested profile: initrd ${ni.built.built ? 'built' : 'up to date'}, rootfs ${nr.built.built ? 'built' : 'up to date'} (${nr.built.dir})`);
  }

  const manifest: Manifest = {
    schema: MANIFEST_SCHEMA,
    kernelVersion,
    kernel: { hash: kernelHash, path: join(kernel.dir, kernelFiles.vmlinuz) },
    initrd: { hash: initrdHash, path: join(initrd.dir, 'initrd.cpio') },
    rootfs: { hash: rootfsHash, path: join(rootfs.dir, 'rootfs.ext4') },
    vmlinux: { hash: vmlinuxHash, path: join(vmlinux.dir, 'vmlinux') },
    ...(nested ? { nested } : {}),
    createdAt: new Date().toISOString(),
  };
  if (!old || JSON.stringify({ ...old, createdAt: '' }) !== JSON.stringify({ ...manifest, createdAt: '' })) {
    await writeManifest(layout, manifest);
  }
  for (const [kind, a] of [['kernel', kernel], ['vmlinux', vmlinux], ['initrd', initrd], ['rootfs', rootfs]] as const) {
    progress(`${kind}: ${a.built ? 'built' : 'up to date'} (${a.dir})`);
  }
  // Not while a VM runs: an outer VM's inner fcvm boots from the initrds its manifest named.
  if ((await new StateStore(layout.vmState).list()).some((e) => e.ok && isOwnerAlive(e.state))) {
    progress('initrd: older builds\' initrds are kept while VMs run');
  } else {
    // Tidying only: a setup that cannot remove them has still done its work.
    const pruned = await pruneInitrds(layout.artifacts, manifest).catch((e: Error) => void progress(`initrd: older builds' initrds not removed: ${e.message}`));
    if (pruned && pruned.removed.length > 0) progress(`initrd: removed ${pruned.removed.length} that older fcvm builds made (${Math.round(pruned.bytes / 2 ** 20)} MiB)`);
  }
  await step('disks', () => setupDisks(opts, manifest));
  return (await readManifest(layout)) ?? manifest;
}

/**
 * Raw disks (Firecracker's) are reflinks: says whether the base dir can reflink, makes
 * the reflink filesystem when asked, and puts the root image on it if it is not there.
 */
async function setupDisks(opts: SetupOptions, manifest: Manifest): Promise<void> {
  if (opts.reflinkFsBytes) await createReflinkFs(opts.layout, opts.reflinkFsBytes, opts.progress);
  const layout = layoutFor(opts.layout.base);
  await ensureReflinkFs(layout);
  await prepareRawBaseDisk(layout, manifest, opts.progress);
  if (await canReflink(layout.diskRoot)) opts.progress(`disks: ${layout.diskRoot} can reflink (raw disks cost no copy)`);
  else opts.progress(`disks: ${layout.diskRoot} cannot reflink; Firecracker VMs need "fcvm setup --reflink-fs 20G" (QEMU does not)`);
}
