import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

const QCOW2_MAGIC = 0x514649fb;
const MAX_DEPTH = 16;

/**
 * The backing file named in a qcow2 header (big-endian: magic, version, then the
 * backing name's offset as u64 at byte 8 and its length as u32 at 16), resolved against
 * the image's directory as QEMU does; undefined for a raw file or a qcow2 without one.
 */
export async function backingFile(path: string): Promise<string | undefined> {
  const f = await open(path, 'r');
  try {
    const head = Buffer.alloc(20);
    await f.read(head, 0, 20, 0);
    if (head.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
    const offset = Number(head.readBigUInt64BE(8));
    const size = head.readUInt32BE(16);
    if (offset === 0 || size === 0 || size > 1023) return undefined;
    const name = Buffer.alloc(size);
    await f.read(name, 0, size, offset);
    return resolve(dirname(path), name.toString('utf8'));
  } finally {
    await f.close();
  }
}

/** Every file under `path` in its backing chain, `path` excluded, nearest first. */
export async function backingChain(path: string): Promise<string[]> {
  const out: string[] = [];
  for (let cur = await backingFile(path); cur !== undefined; cur = await backingFile(cur)) {
    if (out.length >= MAX_DEPTH || out.includes(cur)) throw new Error(`the backing chain of ${path} is too deep or loops`);
    out.push(cur);
  }
  return out;
}
