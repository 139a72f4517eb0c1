import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import * as z from 'zod/mini';
import { errors } from '../errors/catalogue.js';
import { writeFileAtomic } from '../util/fs-atomic.js';
import type { Layout } from './layout.js';

export const MANIFEST_SCHEMA = 1;

const ArtifactSchema = z.object({ hash: z.string(), path: z.string() });

/** Points at the current content-addressed artifacts. Written last by setup. */
export const ManifestSchema = z.object({
  schema: z.literal(MANIFEST_SCHEMA),
  kernelVersion: z.string(),
  kernel: ArtifactSchema,
  initrd: ArtifactSchema,
  rootfs: ArtifactSchema,
  /** The kernel as an ELF vmlinux, for Firecracker (made by setups since Firecracker support). */
  vmlinux: z.optional(ArtifactSchema),
  /** The nested kernel profile's initrd and rootfs (KVM modules, QEMU), when setup made them. */
  nested: z.optional(z.object({ initrd: ArtifactSchema, rootfs: ArtifactSchema })),
  createdAt: z.string(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export async function readManifest(layout: Layout): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(layout.manifest, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = ManifestSchema.safeParse(JSON.parse(text));
  return parsed.success ? rebaseManifest(parsed.data, layout.artifacts) : undefined;
}

/**
 * The manifest with every artifact path under `artifacts`. Artifacts are always
 * `ARTIFACTS/KIND-HASH/FILE`, so a manifest still reads right when its directory is
 * seen at another path: an outer VM's artifacts mapped into it for an inner fcvm. Pure.
 */
export function rebaseManifest(m: Manifest, artifacts: string): Manifest {
  const at = (a: { hash: string; path: string }) => ({ hash: a.hash, path: join(artifacts, basename(dirname(a.path)), basename(a.path)) });
  return {
    ...m,
    kernel: at(m.kernel),
    initrd: at(m.initrd),
    rootfs: at(m.rootfs),
    ...(m.vmlinux ? { vmlinux: at(m.vmlinux) } : {}),
    ...(m.nested ? { nested: { initrd: at(m.nested.initrd), rootfs: at(m.nested.rootfs) } } : {}),
  };
}

/** Where root's `fcvm setup` puts the manifest; other users may use those artifacts read-only. */
export const SYSTEM_MANIFEST = '/var/lib/fcvm/artifacts/manifest.json';

/**
 * The manifest, or a SETUP_MISSING error that says to run setup. A user without
 * artifacts of their own uses the ones root's `fcvm setup` made (they are
 * world-readable), whichever base directory (--base-dir or FCVM_BASE_DIR) they chose.
 */
export async function requireManifest(layout: Layout, systemManifest = SYSTEM_MANIFEST, uid = process.getuid?.() ?? 0): Promise<Manifest> {
  const m = await readManifest(layout);
  if (m) return m;
  const asUser = uid !== 0 && layout.manifest !== systemManifest;
  if (asUser) {
    const sys = await readFile(systemManifest, 'utf8').then((t) => ManifestSchema.safeParse(JSON.parse(t)), () => undefined);
    if (sys?.success) return sys.data;
  }
  throw errors.setupMissing(layout.base, 'artifacts manifest', asUser);
}

export async function writeManifest(layout: Layout, m: Manifest): Promise<void> {
  await writeFileAtomic(layout.manifest, JSON.stringify(m, null, 2) + '\n');
}
