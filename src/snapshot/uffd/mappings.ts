/**
 * Firecracker's GuestRegionUffdMapping message, checked before a single page is served.
 * The message comes from a VMM that a hostile guest may control: every region must lie
 * inside the memory file, be aligned to its page size, and overlap no other region in
 * the VMM's address space or in the file. Pure.
 *
 * `[{"base_host_virt_addr", "size", "offset", "page_size", "page_size_kib"}]`, both page
 * fields in bytes despite the name; Firecracker 1.10 and 1.11 send only `page_size_kib`.
 */

export const PAGE_4K = 4096;
export const PAGE_2M = 2 * 1024 * 1024;
/** Firecracker has a few regions (two on x86 around the MMIO gap, more with hotplug). */
export const MAX_REGIONS = 64;
/** Above what a 47-bit user address space can hold. */
const MAX_ADDR = 2 ** 47;

export interface Region {
  /** Start of the region in the VMM's address space. */
  base: number;
  size: number;
  /** Where the region's contents start in the memory file. */
  offset: number;
  pageSize: number;
}

export type MappingsResult = { ok: true; regions: Region[]; pageSize: number } | { ok: false; why: string };

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses and checks the mappings message against a memory file of `fileSize` bytes. */
export function parseMappings(text: string, fileSize: number): MappingsResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, why: 'the mappings message is not JSON' };
  }
  if (!Array.isArray(raw)) return { ok: false, why: 'the mappings message is not a JSON array' };
  if (raw.length === 0) return { ok: false, why: 'the mappings message lists no region' };
  if (raw.length > MAX_REGIONS) return { ok: false, why: `the mappings message lists ${raw.length} regions (at most ${MAX_REGIONS})` };
  const regions: Region[] = [];
  for (const [i, r] of raw.entries()) {
    if (typeof r !== 'object' || r === null) return { ok: false, why: `region ${i} is not an object` };
    const m = r as Record<string, unknown>;
    const pageSize = m.page_size ?? m.page_size_kib;
    for (const [k, v] of [['base_host_virt_addr', m.base_host_virt_addr], ['size', m.size], ['offset', m.offset], ['page_size', pageSize]] as const) {
      if (!isUint(v)) return { ok: false, why: `region ${i}: ${k} is missing or not a non-negative integer` };
    }
    const reg: Region = { base: m.base_host_virt_addr as number, size: m.size as number, offset: m.offset as number, pageSize: pageSize as number };
    if (reg.pageSize !== PAGE_4K && reg.pageSize !== PAGE_2M) return { ok: false, why: `region ${i}: page size ${reg.pageSize} is neither 4 KiB nor 2 MiB` };
    if (reg.size === 0 || reg.size % reg.pageSize !== 0) return { ok: false, why: `region ${i}: size ${reg.size} is not a positive multiple of its page size` };
    if (reg.base % reg.pageSize !== 0 || reg.offset % reg.pageSize !== 0) return { ok: false, why: `region ${i}: address or offset is not aligned to its page size` };
    if (reg.base === 0 || reg.base + reg.size > MAX_ADDR) return { ok: false, why: `region ${i}: address range is outside user space` };
    if (reg.offset + reg.size > fileSize) {
      return { ok: false, why: `region ${i}: file range ${reg.offset}+${reg.size} ends past the memory file (${fileSize} bytes)` };
    }
    regions.push(reg);
  }
  const pageSize = regions[0]!.pageSize;
  if (regions.some((r) => r.pageSize !== pageSize)) return { ok: false, why: 'regions have different page sizes' };
  const overlaps = (key: 'base' | 'offset') => {
    const sorted = [...regions].sort((a, b) => a[key] - b[key]);
    return sorted.some((r, i) => i > 0 && sorted[i - 1]![key] + sorted[i - 1]!.size > r[key]);
  };
  if (overlaps('base')) return { ok: false, why: 'two regions overlap in the VMM\'s address space' };
  if (overlaps('offset')) return { ok: false, why: 'two regions overlap in the memory file' };
  return { ok: true, regions: regions.sort((a, b) => a.base - b.base), pageSize };
}

/**
 * The file offset of the page holding `addr`, or -1 if no region holds it. Regions are
 * sorted by base; `hint` is the index of the region that held the last fault (faults
 * come in runs), returned in `out[0]`.
 */
export function locate(regions: readonly Region[], addr: number, out: Int32Array): number {
  const h = out[0]!;
  let r = regions[h];
  if (!r || addr < r.base || addr >= r.base + r.size) {
    let lo = 0;
    let hi = regions.length - 1;
    r = undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = regions[mid]!;
      if (addr < m.base) hi = mid - 1;
      else if (addr >= m.base + m.size) lo = mid + 1;
      else {
        r = m;
        out[0] = mid;
        break;
      }
    }
    if (!r) return -1;
  }
  const pageAddr = addr - ((addr - r.base) % r.pageSize);
  return r.offset + (pageAddr - r.base);
}

/** The VMM address of the page at file offset `off`, or -1 if no region maps it. */
export function addressOf(regions: readonly Region[], off: number): number {
  for (const r of regions) if (off >= r.offset && off < r.offset + r.size) return r.base + (off - r.offset);
  return -1;
}
