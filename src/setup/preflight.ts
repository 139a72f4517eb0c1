import { access, constants } from 'node:fs/promises';
import { errors } from '../errors/catalogue.js';
import { which } from '../util/exec.js';

/** One named check with a fix-it hint. */
export interface Check {
  name: string;
  /** Returns a problem description, or undefined when fine. */
  probe: () => Promise<string | undefined>;
  fix: string;
}

const INSTALL_HINT = 'Run the README\'s install command (it apt-get installs what fcvm needs)';

export function commandCheck(cmd: string, pkg: string): Check {
  return {
    name: `command ${cmd}`,
    probe: async () => ((await which(cmd)) ? undefined : 'not found on PATH'),
    fix: `Install it: apt-get install -y ${pkg} (or ${INSTALL_HINT.toLowerCase()})`,
  };
}

export const rootCheck: Check = {
  name: 'privileges',
  probe: async () => (process.getuid?.() === 0 ? undefined : 'this needs root'),
  fix: 'Run it as root (sudo)',
};

export const SETUP_CHECKS: Check[] = [
  rootCheck,
  commandCheck('apt-get', 'apt'),
  commandCheck('dpkg-deb', 'dpkg'),
  commandCheck('depmod', 'kmod'),
  commandCheck('cpio', 'cpio'),
  commandCheck('debootstrap', 'debootstrap'),
  commandCheck('mkfs.ext4', 'e2fsprogs'),
  // The guest's native programs are compiled at setup (src/setup/guest-programs.ts).
  commandCheck('cc', 'gcc libc6-dev'),
];

export const RUN_CHECKS: Check[] = [
  commandCheck('qemu-system-x86_64', 'qemu-system-x86'),
  commandCheck('qemu-img', 'qemu-utils'),
  commandCheck('podman', 'podman'),
  commandCheck('setpriv', 'util-linux'),
];

export const kvmDeviceCheck: Check = {
  name: '/dev/kvm',
  probe: async () => access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => undefined, () => 'missing or not accessible'),
  fix: 'Load kvm_intel or kvm_amd and give your user access to /dev/kvm, or use --accel tcg',
};

/** Runs the checks and throws a PREFLIGHT error for the first failure. */
export async function preflight(checks: readonly Check[]): Promise<void> {
  const results = await Promise.all(checks.map(async (c) => ({ c, problem: await c.probe() })));
  const bad = results.find((r) => r.problem);
  if (bad) throw errors.preflight(bad.c.name, bad.problem!, bad.c.fix);
}
