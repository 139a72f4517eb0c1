import { readFileSync } from 'node:fs';

/**
 * The host's TSC rate in kHz, for the guest's `tsc_early_khz=`. Under TCG the guest's
 * TSC ticks at the host's rate, and QEMU's microvm has no HPET or PM timer to calibrate
 * it against: on a busy host the guest's PIT calibration can fail and hang the boot.
 * Read from /proc/cpuinfo when the TSC is constant; undefined when unknown.
 */
export function hostTscKhz(cpuinfo = readCpuinfo()): number | undefined {
  const first = cpuinfo.split('\n\n')[0] ?? '';
  const flags = first.match(/^flags\s*:\s*(.*)$/m)?.[1]?.split(/\s+/) ?? [];
  const mhz = Number(first.match(/^cpu MHz\s*:\s*([\d.]+)$/m)?.[1]);
  if (!flags.includes('constant_tsc') || !Number.isFinite(mhz) || mhz <= 0) return undefined;
  return Math.round(mhz * 1000);
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}
