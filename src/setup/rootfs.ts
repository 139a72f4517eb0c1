import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, start } from '../util/exec.js';

/** Packages of the guest root filesystem, on top of Debian bookworm minbase. */
export const ROOTFS_PACKAGES = [
  'podman', 'crun', 'conmon', 'netavark', 'aardvark-dns', 'nodejs', 'fuse3',
  'iproute2', 'iptables', 'ca-certificates', 'kmod',
  // podman run --init runs it as the container's PID 1.
  'catatonit',
] as const;
export const ROOTFS_SUITE = 'bookworm';
export const ROOTFS_SIZE = '4G';

/** The Debian mirror the host's apt uses, so the guest comes from the same place. */
export async function hostDebianMirror(): Promise<string> {
  const files = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch(() => '');
    const deb822 = text.match(/^URIs:\s*(\S+\/debian)\/?\s*$/m);
    if (deb822) return deb822[1]!;
    const legacy = text.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+bookworm\b/m);
    if (legacy) return legacy[1]!;
  }
  return 'http://deb.debian.org/debian';
}

/**
 * What a line of debootstrap's output means to a person: a new phase (the first time
 * only: packages alternate between retrieving and validating), and the package being
 * worked on. `seen` holds the phases already announced. Pure but for `seen`.
 */
export function debootstrapProgress(line: string, seen: Set<string>): { phase?: string; live?: string } | undefined {
  const m = line.match(/^I: (Retrieving|Validating|Extracting|Installing|Unpacking|Configuring|Base system)\s*(\S*)/);
  if (!m) return undefined;
  const p = m[1]!;
  const out: { phase?: string; live?: string } = {};
  if (!seen.has(p)) {
    seen.add(p);
    out.phase = p === 'Base system' ? 'base system installed' : `${p.toLowerCase()} packages`;
  }
  if (m[2]) out.live = `${p.toLowerCase()} ${m[2]}`;
  return out;
}

export interface RootfsInputs {
  mirror: string;
  configDir: string;
  onProgress: (line: string) => void;
  /** The package being worked on, for a live line (called often). */
  onLive?: (line: string) => void;
  /** Packages on top of ROOTFS_PACKAGES (a kernel profile's). */
  extraPackages?: readonly string[];
  /** Adds a profile's files to the tree before the image is made. */
  addFiles?: (tree: string) => Promise<void>;
}

/**
 * debootstrap minbase with podman and Node, then a few config files, then an ext4 image
 * made with `mkfs.ext4 -d` (no loop mount). Runs as root.
 */
export async function buildRootfs(inputs: RootfsInputs, outFile: string, tree: string): Promise<void> {
  const { proc } = await start('debootstrap', [
    '--variant=minbase', `--include=${[...ROOTFS_PACKAGES, ...(inputs.extraPackages ?? [])].join(',')}`, ROOTFS_SUITE, tree, inputs.mirror,
  ], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', all: true, buffer: false });
  let tail: string[] = [];
  const seen = new Set<string>();
  const all = proc.all as unknown as NodeJS.ReadableStream;
  all.setEncoding('utf8');
  all.on('data', (chunk: string) => {
    for (const line of chunk.split('\n').filter(Boolean)) {
      tail = [...tail.slice(-19), line];
      const p = debootstrapProgress(line, seen);
      if (p?.phase) inputs.onProgress(p.phase);
      if (p?.live) inputs.onLive?.(p.live);
    }
  });
  try {
    await proc;
  } catch (e) {
    throw new Error(`debootstrap failed: ${tail.slice(-3).join(' | ')}`, { cause: e });
  }
  await configureRootfs(tree, inputs.configDir);
  if (inputs.addFiles) await inputs.addFiles(tree);
  inputs.onProgress('making the ext4 image');
  await run('mkfs.ext4', ['-q', '-F', '-L', 'fcvm-root', '-E', 'root_owner=0:0', '-d', tree, outFile, ROOTFS_SIZE]);
}

async function configureRootfs(tree: string, configDir: string): Promise<void> {
  // bookworm's podman ships a CNI config whose plugins are not installed with netavark.
  await rm(join(tree, 'etc/cni/net.d/87-podman-bridge.conflist'), { force: true });
  await mkdir(join(tree, 'etc/containers'), { recursive: true });
  await copyFile(join(configDir, 'containers.conf'), join(tree, 'etc/containers/containers.conf'));
  await copyFile(join(configDir, 'storage.conf'), join(tree, 'etc/containers/storage.conf'));
  // The image store's mount point: podman refuses an additional store that does not exist.
  await mkdir(join(tree, 'var/lib/fcvm-images'), { recursive: true });
  await writeFile(join(tree, 'etc/hostname'), 'fcvm\n');
  await writeFile(join(tree, 'etc/hosts'), '127.0.0.1 localhost\n::1 localhost\n');
  await writeFile(join(tree, 'etc/resolv.conf'), '');
  // Space the guest never needs.
  for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists', 'usr/share/doc', 'usr/share/man', 'usr/share/locale', 'usr/share/info']) {
    await rm(join(tree, d), { recursive: true, force: true });
    await mkdir(join(tree, d), { recursive: true });
  }
}
