import { copyFile, link, mkdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errors, messageOf } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { machineFault } from '../errors/os-fault.js';
import { macFor } from '../net/addressing.js';
import { METHODS } from '../protocol/api.js';
import { removeTree } from '../util/remove-tree.js';
import { failpoint } from '../util/failpoint.js';
import type { Ctx } from '../vm/run-context.js';
import { ROOT_DISK } from '../vm/run-context.js';
import { commitSnapshot, partialSnapshotDir, sha256File, snapshotDir, SNAPSHOT_FILES, SNAPSHOT_SCHEMA, type SnapshotMeta } from './store.js';

/** Only one snapshot of a VM at a time. */
const busy = new WeakSet<Ctx>();

/**
 * Takes a snapshot of the supervisor's own VM: the agent is told first (so a clone
 * can start a new session), then the VM pauses just long enough to save device state,
 * copy RAM and freeze the disk, and goes on. Checksums and meta.json follow, and the
 * snapshot appears under its tag only when complete.
 */
export async function createSnapshot(c: Ctx, tag: string): Promise<SnapshotMeta> {
  const { layout, log } = c.env;
  const name = c.opts.name;
  if (!c.driver.capabilities.snapshot) throw errors.snapshotRefused(name, `hypervisor ${c.driver.name} cannot take snapshots`);
  if (c.clone && !c.driver.capabilities.snapshotRestored) throw errors.snapshotRefused(name, `it is a clone, and ${c.driver.name} keeps a clone's RAM as a private copy of its snapshot; snapshot its source instead`);
  if (!['running', 'healthy', 'unhealthy'].includes(c.state.status)) throw errors.snapshotRefused(name, `it is ${c.state.status}, not running`);
  if (await stat(snapshotDir(layout, tag)).then(() => true, () => false)) throw errors.snapshotExists(tag);
  if (busy.has(c)) throw errors.snapshotRefused(name, 'another snapshot of it is being taken');
  busy.add(c);
  const partial = partialSnapshotDir(layout, tag);
  try {
    await mkdir(layout.snapshots, { recursive: true });
    await mkdir(partial, { mode: 0o700 });
    await c.conn.request(METHODS.snapshotPrepare, {}, 10_000);
    failpoint('snapshot:prepared');
    const t0 = performance.now();
    await c.vm.pause();
    failpoint('snapshot:paused');
    // The tables as the paused guest knows them (its in-flight requests are re-sent to a clone).
    const volumeTables = c.volumes?.snapshot();
    let taken;
    try {
      taken = await c.vm.snapshot(partial);
      failpoint('snapshot:saved');
    } finally {
      await c.vm.resume();
    }
    failpoint('snapshot:resumed');
    const pausedMs = Math.round(performance.now() - t0);
    log.debug({ pausedMs }, 'snapshot: source resumed');
    await c.conn.request(METHODS.snapshotDone, {}, 10_000).catch((e) => log.warn({ err: e }, 'snapshot: the agent did not confirm'));
    await taken.complete();
    const root = taken.files.disks.find((d) => d.id === ROOT_DISK);
    const inside = (p: string | undefined) => p !== undefined && dirname(p) === partial;
    if (!root || !inside(root.path)) throw new Error('the driver did not freeze the root disk');
    if (!inside(taken.files.state) || !inside(taken.files.memory) || (taken.files.kernel && !inside(taken.files.kernel))) throw new Error('the driver wrote snapshot files outside the snapshot');
    if (c.image.kind === 'archive') await linkOrCopy(c.image.archive, join(partial, SNAPSHOT_FILES.image));
    const names = [taken.files.state, taken.files.memory, root.path, ...(taken.files.kernel ? [taken.files.kernel] : [])].map((p) => basename(p));
    if (c.image.kind === 'archive') names.push(SNAPSHOT_FILES.image);
    const files: SnapshotMeta['files'] = {};
    for (const f of names) files[f] = await sha256File(join(partial, f));
    const nic = c.spec.nics[0];
    const meta: SnapshotMeta = {
      schema: SNAPSHOT_SCHEMA,
      tag,
      createdAt: new Date().toISOString(),
      pausedMs,
      source: { name, id: c.state.id },
      plan: {
        image: c.opts.image,
        ...(c.image.kind === 'archive' ? { imageId: c.image.id } : {}),
        ...(c.image.healthcheck ? { healthcheck: c.image.healthcheck } : {}),
        ...(c.opts.command ? { command: c.opts.command } : {}),
        env: c.opts.env,
        privileged: c.opts.privileged,
        network: { mode: c.opts.network, publish: c.opts.publish },
      },
      machine: {
        hypervisor: c.driver.name,
        accel: c.accel,
        kernel: c.spec.kernel,
        initrd: c.spec.initrd ?? c.manifest.initrd.path,
        cmdline: c.spec.cmdline,
        vcpus: c.spec.vcpus,
        memoryMiB: c.spec.memoryMiB,
        rootfs: c.opts.kernelProfile === 'nested' && c.manifest.nested ? c.manifest.nested.rootfs.path : c.manifest.rootfs.path,
        ...(c.spec.nested ? { nested: true } : {}),
        mac: nic?.mac ?? macFor(c.state.id),
        ...(c.guestNet ? { guestNet: c.guestNet } : {}),
        hasImageDisk: c.image.kind === 'archive',
        rootDisk: { file: basename(root.path), format: root.format },
        ...(taken.files.kernel ? { kernelFile: basename(taken.files.kernel) } : {}),
      },
      ...(c.opts.volumes.length > 0 ? { volumes: { mappings: c.opts.volumes, tables: volumeTables ?? [] } } : {}),
      files,
    };
    failpoint('snapshot:complete');
    await commitSnapshot(layout, partial, meta);
    return meta;
  } catch (e) {
    // Whatever failed, the source must not stay armed for a session that never comes.
    await c.conn.request(METHODS.snapshotDone, {}, 10_000).catch(() => {});
    await removeTree(partial).catch(() => {});
    throw machineFault(e, `taking snapshot "${tag}"`, layout.snapshots) ?? (isFcvmError(e) ? e : errors.snapshotRefused(name, messageOf(e)));
  } finally {
    busy.delete(c);
  }
}

/** A hard link where possible (the source is never written again), else a copy. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}
