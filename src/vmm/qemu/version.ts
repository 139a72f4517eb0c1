import { run } from '../../util/exec.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

let line: Promise<string> | undefined;

/** The first line of `qemu-system-x86_64 --version`, asked once per process (a VM's start needs it twice). */
export function qemuVersionLine(): Promise<string> {
  line ??= run(QEMU_BINARY, ['--version']).then((v) => v.split('\n')[0]?.trim() ?? '');
  return line;
}

/** QEMU's major and minor version; 0.0 where it cannot say. */
export async function qemuVersion(): Promise<{ major: number; minor: number }> {
  const m = /version (\d+)\.(\d+)/.exec(await qemuVersionLine().catch(() => ''));
  return { major: Number(m?.[1] ?? 0), minor: Number(m?.[2] ?? 0) };
}
