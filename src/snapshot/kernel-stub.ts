import { open, writeFile } from 'node:fs/promises';

/** Offset of `setup_sects` in a bzImage's boot header (Linux boot protocol). */
const SETUP_SECTS = 0x1f1;
/** What a stub keeps of the kernel proper: the VMM loads it, the restored guest never runs it. */
const PAYLOAD_KEEP = 4096;

/**
 * Writes the boot header and setup code of the bzImage `kernel`, with a token payload.
 * A restored VM takes all of RAM from its snapshot, but the VMM still wants a kernel to
 * load, and keeps what it loads in its own memory: 14 MB per clone for the real one.
 */
export async function writeKernelStub(kernel: string, out: string): Promise<void> {
  const f = await open(kernel, 'r');
  try {
    const head = Buffer.alloc(1024);
    await f.read(head, 0, head.length, 0);
    if (head.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new Error(`${kernel} is not a bzImage (no "HdrS" header)`);
    const setupSects = head.readUInt8(SETUP_SECTS) || 4;
    const keep = (setupSects + 1) * 512 + PAYLOAD_KEEP;
    const buf = Buffer.alloc(keep);
    const { bytesRead } = await f.read(buf, 0, keep, 0);
    await writeFile(out, buf.subarray(0, bytesRead));
  } finally {
    await f.close();
  }
}
