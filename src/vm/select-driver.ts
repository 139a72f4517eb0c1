import { join } from 'node:path';
import { canReflink } from '../disks/reflink.js';
import { errors } from '../errors/catalogue.js';
import type { HypervisorChoice } from '../options/run-options.js';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';
import type { VmmDriver } from '../vmm/driver.js';
import { FirecrackerDriver } from '../vmm/firecracker/driver.js';
import { QemuDriver } from '../vmm/qemu/driver.js';

/**
 * The driver for --hypervisor. `auto` prefers Firecracker where it can run (its binary
 * and a KVM that runs ordinary kernels are present, and raw disks can be reflinked
 * under the base dir) and falls back to QEMU, saying why at debug level.
 */
export async function selectDriver(choice: HypervisorChoice, log: Logger, layout?: Layout): Promise<VmmDriver> {
  // The cache keeps what a jailed QEMU needs of /usr across runs.
  const qemu = new QemuDriver(log, layout && join(layout.base, 'cache'));
  const fc = new FirecrackerDriver(log);
  if (choice === 'auto') {
    let fcWhy = await fc.unavailableReason();
    if (!fcWhy && layout && !(await canReflink(layout.diskRoot))) fcWhy = `${layout.diskRoot} cannot reflink (see "fcvm setup --reflink-fs")`;
    if (!fcWhy) return fc;
    log.debug({ why: fcWhy }, 'Firecracker not usable; using QEMU');
    const qWhy = await qemu.unavailableReason();
    if (qWhy) throw errors.hypervisorUnavailable('qemu', qWhy);
    return qemu;
  }
  const driver = choice === 'qemu' ? qemu : fc;
  const why = await driver.unavailableReason();
  if (why) throw errors.hypervisorUnavailable(choice, why);
  return driver;
}
