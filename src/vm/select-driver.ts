import { errors } from '../errors/catalogue.js';
import type { HypervisorChoice } from '../options/run-options.js';
import type { Logger } from '../util/log.js';
import type { VmmDriver } from '../vmm/driver.js';
import { FirecrackerDriver } from '../vmm/firecracker/driver.js';
import { QemuDriver } from '../vmm/qemu/driver.js';

/**
 * The driver for --hypervisor. `auto` prefers Firecracker where it can run (its binary
 * and KVM are present) and falls back to QEMU.
 */
export async function selectDriver(choice: HypervisorChoice, log: Logger, cacheDir?: string): Promise<VmmDriver> {
  const qemu = new QemuDriver(log, cacheDir);
  const fc = new FirecrackerDriver();
  if (choice === 'auto') {
    const fcWhy = await fc.unavailableReason();
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
