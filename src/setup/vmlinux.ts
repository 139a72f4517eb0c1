import { readFile, rm, writeFile } from 'node:fs/promises';
import { run, which } from '../util/exec.js';

/**
 * Firecracker on x86_64 boots an uncompressed ELF vmlinux with a PVH entry note, while
 * Debian ships a bzImage. The bzImage's header says exactly where its compressed
 * payload (the ELF) is; this finds it, decompresses it with the matching tool, and
 * checks the result. No download, no kernel build.
 */

export type PayloadFormat = 'gzip' | 'xz' | 'lzma' | 'lz4' | 'zstd' | 'bzip2' | 'lzo';

const MAGICS: [PayloadFormat, number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f]],
  ['lzma', [0x5d, 0x00, 0x00]],
];

/** The decompressor of each format: tool, arguments (reading stdin), Debian package. */
const TOOLS: Record<PayloadFormat, { cmd: string; args: string[]; pkg: string }> = {
  gzip: { cmd: 'gzip', args: ['-dc'], pkg: 'gzip' },
  xz: { cmd: 'xz', args: ['-dc'], pkg: 'xz-utils' },
  lzma: { cmd: 'xz', args: ['-dc', '--format=lzma'], pkg: 'xz-utils' },
  lz4: { cmd: 'lz4', args: ['-dc'], pkg: 'lz4' },
  zstd: { cmd: 'zstd', args: ['-dc'], pkg: 'zstd' },
  bzip2: { cmd: 'bzip2', args: ['-dc'], pkg: 'bzip2' },
  lzo: { cmd: 'lzop', args: ['-dc'], pkg: 'lzop' },
};

/**
 * Where a bzImage's compressed kernel is and how it is compressed (Linux boot protocol
 * 2.08+: payload_offset and payload_length at 0x248, from the protected-mode code,
 * which starts after the setup sectors). Pure.
 */
export function bzImagePayload(image: Uint8Array): { offset: number; length: number; format: PayloadFormat } {
  const b = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  if (b.length < 0x250 || b.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new Error('not a bzImage (no "HdrS" boot header)');
  const version = b.readUInt16LE(0x206);
  if (version < 0x208) throw new Error(`boot protocol ${version >> 8}.${version & 0xff} has no payload fields (2.08 or later needed)`);
  const setupSects = b[0x1f1] || 4;
  const offset = (setupSects + 1) * 512 + b.readUInt32LE(0x248);
  const length = b.readUInt32LE(0x24c);
  if (length === 0 || offset + length > b.length) throw new Error('the payload lies outside the file');
  const format = MAGICS.find(([, m]) => m.every((x, i) => b[offset + i] === x))?.[0];
  if (!format) throw new Error(`unknown payload compression (magic ${b.subarray(offset, offset + 6).toString('hex')})`);
  return { offset, length, format };
}

/** Checks an x86-64 ELF with a PVH entry point (Xen ELF note 18), which Firecracker boots. Pure. */
export function checkPvhElf(head: Uint8Array, notes: (off: number, len: number) => Uint8Array): void {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b.readUInt16LE(18) !== 62) throw new Error('the payload is not an x86-64 ELF kernel');
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (b.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
    const n = Buffer.from(notes(Number(b.readBigUInt64LE(ph + 8)), Number(b.readBigUInt64LE(ph + 32))));
    for (let o = 0; o + 12 <= n.length; ) {
      const namesz = n.readUInt32LE(o);
      const descsz = n.readUInt32LE(o + 4);
      const type = n.readUInt32LE(o + 8);
      const name = n.toString('latin1', o + 12, o + 12 + namesz).replace(/\0+$/, '');
      if (name === 'Xen' && type === 18 /* XEN_ELFNOTE_PHYS32_ENTRY */) return;
      o += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3);
    }
  }
  throw new Error('the kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY), which Firecracker needs');
}

/** Extracts the ELF vmlinux from the bzImage `kernel` into `out`. */
export async function extractVmlinux(kernel: string, out: string): Promise<void> {
  const image = await readFile(kernel);
  const p = bzImagePayload(image);
  const tool = TOOLS[p.format];
  if (!(await which(tool.cmd))) throw new Error(`the kernel payload is ${p.format}-compressed and "${tool.cmd}" is not installed (apt-get install ${tool.pkg})`);
  // All but gzip carry the decompressed size in 4 trailing bytes, which decoders reject.
  const payload = image.subarray(p.offset, p.offset + p.length - (p.format === 'gzip' ? 0 : 4));
  const tmp = `${out}.payload`;
  await writeFile(tmp, payload);
  try {
    await run('sh', ['-c', `"$1" ${tool.args.join(' ')} < "$2" > "$3"`, 'sh', tool.cmd, tmp, out]);
  } finally {
    await rm(tmp, { force: true });
  }
  // Setup runs once per kernel: reading the whole ELF (50 MB) to check it is cheap enough.
  const elf = await readFile(out);
  checkPvhElf(elf, (off, len) => elf.subarray(off, off + len));
}
