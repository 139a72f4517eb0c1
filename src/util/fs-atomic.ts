import { randomBytes } from 'node:crypto';
import { link, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { ownerTag } from './owner-tag.js';

function tmpPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(2).toString('hex')}.${ownerTag()}.tmp`);
}

/** Writes a file atomically: the content goes to a temporary file that is renamed over `path`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = tmpPathFor(path);
  try {
    await writeFile(tmp, data, { mode: 0o644 });
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Creates `path` with `data` only if it does not exist yet, atomically and with its
 * whole content (link(2) of a complete temporary file). Returns false if it existed.
 */
export async function createFileExclusive(path: string, data: string): Promise<boolean> {
  const tmp = tmpPathFor(path);
  await writeFile(tmp, data, { mode: 0o644 });
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}
