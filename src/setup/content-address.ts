import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import { ownerTag } from '../util/owner-tag.js';
import { removeTree } from '../util/remove-tree.js';
import { join } from 'node:path';

/** A short, stable hash of a recipe's inputs. */
export function hashInputs(...parts: unknown[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : JSON.stringify(p)).update('\0');
  return h.digest('hex').slice(0, 16);
}

export async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Returns the directory of artifact `kind-hash`, building it with `build` into a
 * temporary directory first and renaming it into place, so a killed build never
 * leaves a half-made artifact under its final name.
 */
export async function ensureArtifact(
  root: string,
  kind: string,
  hash: string,
  force: boolean,
  build: (dir: string) => Promise<void>,
): Promise<{ dir: string; built: boolean }> {
  const dir = join(root, `${kind}-${hash}`);
  if (!force && (await exists(dir))) return { dir, built: false };
  // The owner tag lets the reaper remove a partial build whose builder was killed.
  const tmp = join(root, `.${kind}-${hash}.${ownerTag()}.partial`);
  await removeTree(tmp);
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
    await removeTree(dir);
    await rename(tmp, dir);
  } catch (e) {
    await removeTree(tmp);
    throw e;
  }
  return { dir, built: true };
}
