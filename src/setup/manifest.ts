import { readFile } from 'node:fs/promises';
import { z } from 'zod';
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

/** The manifest, or a SETUP_MISSING error that says to run setup. */
export async function requireManifest(layout: Layout): Promise<Manifest> {
  const m = await readManifest(layout);
  if (!m) throw errors.setupMissing(layout.base, 'artifacts manifest');
  return m;
}

export async function writeManifest(layout: Layout, m: Manifest): Promise<void> {
  await writeFileAtomic(layout.manifest, JSON.stringify(m, null, 2) + '\n');
}
