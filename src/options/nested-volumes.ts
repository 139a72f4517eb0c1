import { errors } from '../errors/catalogue.js';
import { NESTED_ARTIFACTS, NESTED_FCVM_DIR } from '../setup/kernel-profile.js';
import { MAX_VOLUMES, type VolumeMapping } from './volumes.js';

/**
 * The volumes of a nested-profile VM: the user's, then the outer fcvm's package and its
 * artifacts, read-only, at the paths the nested rootfs expects (unless the user mapped
 * something at or above those paths). Only big files are read through them (Node
 * loads fcvm's bundle once; the inner QEMU reads the kernel, initrd and root image,
 * which the outer guest's page cache then keeps). They count against the volume limit. Pure.
 */
export function withNestedVolumes(user: readonly VolumeMapping[], from: { packageRoot: string; artifacts: string }): VolumeMapping[] {
  const covered = (path: string) => user.some((v) => path === v.guest || path.startsWith(`${v.guest}/`));
  const auto: VolumeMapping[] = [
    { host: from.packageRoot, guest: NESTED_FCVM_DIR, readOnly: true },
    { host: from.artifacts, guest: NESTED_ARTIFACTS, readOnly: true },
  ];
  const all = [...user, ...auto.filter((v) => !covered(v.guest))];
  if (all.length > MAX_VOLUMES) {
    throw errors.invalidOption(
      '--kernel-profile', 'nested',
      `${user.length} volumes and the nested profile's ${all.length - user.length} (fcvm and its artifacts) pass the limit of ${MAX_VOLUMES}`,
      `Map at most ${MAX_VOLUMES - (all.length - user.length)} directories of your own, or a common parent directory`,
    );
  }
  return all;
}
