import { errors } from '../../errors/catalogue.js';
import { which } from '../../util/exec.js';
import type { DriverCapabilities, RunningVm, VmmDriver } from '../driver.js';

/**
 * The Firecracker driver. Its boot path (API socket, vsock guest channel, uffd restores)
 * arrives with the Firecracker issue; until then it reports itself unavailable, so
 * `--hypervisor auto` uses QEMU and `--hypervisor firecracker` says why not.
 */
export class FirecrackerDriver implements VmmDriver {
  readonly name = 'firecracker' as const;
  readonly capabilities: DriverCapabilities = {
    snapshot: true,
    uffd: true,
    tcg: false,
    diskFormats: ['raw'],
    guestChannel: 'vsock',
    nicKinds: ['tap'],
  };

  async unavailableReason(): Promise<string | undefined> {
    if (!(await which('firecracker'))) return 'no "firecracker" binary on PATH';
    return 'this fcvm version cannot drive Firecracker yet';
  }

  async boot(): Promise<RunningVm> {
    throw errors.hypervisorUnavailable('firecracker', (await this.unavailableReason()) ?? 'not supported');
  }

  async restore(): Promise<RunningVm> {
    return this.boot();
  }
}
