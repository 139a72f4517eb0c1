import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { packageRoot } from '../util/package-root.js';

/** Bumped when what a startup snapshot holds changes meaning. */
export const STARTUP_KEY_VERSION = 1;

/** Everything that decides a guest's state when a startup snapshot is taken. */
export interface StartupKeyInputs {
  /** fcvm's version and build (see fcvmBuild). */
  fcvm: string;
  hypervisor: string;
  /** The VMM binary's identity (see binaryIdentity): another build may not load the state. */
  vmm: string;
  accel: string;
  /** Content hashes of the artifacts the guest booted from. */
  artifacts: { kernel: string; initrd: string; rootfs: string };
  /** The guest kernel's command line. */
  cmdline: string;
  imageId: string;
  vcpus: number;
  memoryMiB: number;
  network: string;
  /** The volumes' container paths (their host paths are this run's own). */
  volumeGuestPaths: readonly string[];
}

/** The key of a startup snapshot: a SHA-256 of its inputs in a fixed order. Pure. */
export function startupKey(i: StartupKeyInputs): string {
  const canonical = JSON.stringify([
    STARTUP_KEY_VERSION, i.fcvm, i.hypervisor, i.vmm, i.accel,
    i.artifacts.kernel, i.artifacts.initrd, i.artifacts.rootfs, i.cmdline,
    i.imageId, i.vcpus, i.memoryMiB, i.network, [...i.volumeGuestPaths].sort(),
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** Startup snapshots live among snapshots under this tag prefix. */
export const STARTUP_TAG_PREFIX = 'startup-';

/** The snapshot tag of a key (a valid snapshot tag). Pure. */
export const startupTag = (key: string) => `${STARTUP_TAG_PREFIX}${key.slice(0, 24)}`;

/** True for a tag startupTag can make: only those are the cache's to prune. Pure. */
export const isStartupTag = (tag: string) => tag.startsWith(STARTUP_TAG_PREFIX) && /^[0-9a-f]{24}$/.test(tag.slice(STARTUP_TAG_PREFIX.length));

/**
 * fcvm's version and build: the package version and a hash of the CLI's entry bundle,
 * which names every chunk it loads by content hash, so any rebuilt code changes it.
 */
export function fcvmBuild(root = packageRoot()): string {
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  let build = 'dev';
  try {
    build = createHash('sha256').update(readFileSync(join(root, 'dist', 'fcvm.mjs'))).digest('hex').slice(0, 12);
  } catch {
    // not built as a bundle (tests from tsc output): the version alone
  }
  return `${version}+${build}`;
}

/** A binary on PATH (or an absolute path), as path, size and mtime; "missing" if not found. */
export function binaryIdentity(name: string, path = process.env.PATH ?? ''): string {
  const candidates = name.includes('/') ? [name] : path.split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const p of candidates) {
    try {
      const s = statSync(p);
      if (s.isFile()) return `${p}:${s.size}:${Math.round(s.mtimeMs)}`;
    } catch {
      // next
    }
  }
  return `${name}:missing`;
}
