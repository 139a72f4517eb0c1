import { readFile } from 'node:fs/promises';
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
  return parsed.success ? parsed.data : undefined;
}

/** Where root's `fcvm setup` puts the manifest; other users may use those artifacts read-only. */
export const SYSTEM_MANIFEST = '/var/lib/fcvm/artifacts/manifest.json';

/**
 * The manifest, or a SETUP_MISSING error that says to run setup. A user without
 * artifacts of their own uses the ones root's `fcvm setup` made (they are world-readable).
 */
export async function requireManifest(layout: Layout, systemManifest = SYSTEM_MANIFEST): Promise<Manifest> {
  const m = await readManifest(layout);
  if (m) return m;
  if (layout.manifest !== systemManifest && (process.getuid?.() ?? 0) !== 0 && !process.env.FCVM_BASE_DIR) {
    const sys = await readFile(systemManifest, 'utf8').then((t) => ManifestSchema.safeParse(JSON.parse(t)), () => undefined);
    if (sys?.success) return sys.data;
  }
  throw errors.setupMissing(layout.base, 'artifacts manifest');
}

export async function writeManifest(layout: Layout, m: Manifest): Promise<void> {
  await writeFileAtomic(layout.manifest, JSON.stringify(m, null, 2) + '\n');
}
