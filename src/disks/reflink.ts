import { constants } from 'node:fs';
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';

/**
 * A copy-on-write clone of `src` at `dst` (FICLONE, through libuv's copyfile): instant
 * and free whatever the size, and writes to either side stay private. It never falls
 * back to a full copy: where the filesystem cannot reflink, it fails with a clear error.
 */
export async function reflink(src: string, dst: string): Promise<void> {
  try {
    await copyFile(src, dst, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV' || code === 'EINVAL' || code === 'ENOSYS') {
      await rm(dst, { force: true });
      throw errors.noReflink(dst, code === 'EXDEV' ? `${src} is on another filesystem` : 'its filesystem cannot reflink (FICLONE)', e);
    }
    throw e;
  }
}

/** Whether files in `dir` can be reflinked (tried for real, with a scratch file). */
export async function canReflink(dir: string): Promise<boolean> {
  const a = join(dir, `.fcvm-reflink-probe-${process.pid}`);
  const b = `${a}.clone`;
  try {
    await writeFile(a, 'fcvm');
    await copyFile(a, b, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch {
    return false;
  } finally {
    await rm(a, { force: true });
    await rm(b, { force: true });
  }
}
