/**
 * Firecracker versions, and which API fields each knows. Firecracker rejects unknown
 * fields with a 400, so a request carries a field only when the running binary is at
 * least the version that added it (from the swagger of each release). Pure.
 */
export type Version = readonly [number, number, number];

/** ACPI device discovery (1.8) is needed: Debian's kernel has no MPTable support. */
export const MIN_VERSION: Version = [1, 8, 0];

/** The release that added each optional field or endpoint fcvm may send. */
export const SINCE = {
  entropyDevice: [1, 4, 0],
  hugePages: [1, 7, 0],
  networkOverrides: [1, 12, 0],
  snapshotTrackDirtyPages: [1, 13, 0],
  vsockOverride: [1, 16, 0],
  clockRealtime: [1, 16, 0],
  nicMtu: [1, 16, 0],
} as const satisfies Record<string, Version>;

/** Parses "1.10.1", "v1.10.1" or "1.17.0-dev"; undefined if it is none of these. */
export function parseVersion(text: string): Version | undefined {
  const m = text.trim().match(/^v?(\d+)\.(\d+)\.(\d+)/);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function atLeast(v: Version, min: Version): boolean {
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i]! > min[i]!;
  return true;
}

export const formatVersion = (v: Version) => v.join('.');
