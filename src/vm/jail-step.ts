import { spawnSync } from 'node:child_process';
import { chmod, chown, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { vmLimits, type VmCgroup } from '../jail/cgroup.js';
import { hostCgroups } from '../jail/cgroup-host.js';
import { claimJailIdentity, type JailState } from '../jail/jail-state.js';
import { releaseJailId } from '../jail/id-registry.js';
import type { JailSpec } from '../jail/spec.js';
import type { Ctx } from './run-context.js';

/** What --no-jail gives up, for root (every capability) or another user (that user's rights). Pure. */
export function noJailWarning(uid: number): string {
  const who = uid === 0 ? 'as root with every capability' : `as your user (uid ${uid})`;
  const loss = uid === 0 ? 'owns this host' : 'has every right your user has on this host (your files, your processes)';
  return `fcvm: WARNING: --no-jail is UNSAFE and meant for debugging only. This VM's VMM runs ${who}, ` +
    `in the host's namespaces, with no seccomp filter and no cgroup limits: a guest that escapes into the VMM ${loss}.\n`;
}

/**
 * Claims the VM's jail identity for this process (root's VMMs get a uid of their own),
 * and gives the claim up when the VM ends.
 */
export async function claimJail(c: Ctx): Promise<JailState> {
  const jail = await claimJailIdentity(c.opts.jail !== false);
  const jailUid = jail.mode === 'full' ? jail.uid : undefined;
  if (jailUid !== undefined) c.cleanup.push('release the jail id', () => releaseJailId(jailUid));
  return jail;
}

/**
 * The `jail` boot step (after the disks, before the VMM starts): makes the VM's cgroup
 * with its limits, hands the VMM's directory, overlay and RAM file to the VM's own uid,
 * and puts the jail in the spec for the driver. With --no-jail it only says, loudly,
 * what that means.
 */
export async function prepareJail(c: Ctx): Promise<void> {
  const j = c.state.jail;
  if (!j || j.mode === 'off') {
    c.env.out.write(noJailWarning(process.getuid?.() ?? 0));
    return;
  }
  const uid = j.uid!;
  const gid = j.gid!;
  const full = j.mode === 'full';
  const namespaces = full || (c.driver.capabilities.userNamespaceJail && userNamespacesAllowed());
  const privateDir = join(c.state.runDir, 'jail');
  await mkdir(privateDir, { mode: 0o700 });
  const limits = vmLimits(c.spec);
  // A pooled clone's VMM starts before the clone has a name and a state file: its claim
  // at hand-out records the jail (its cgroup is named by the VM id, which the reaper reads).
  const record = () => (c.state.name ? c.store.update(c.state) : Promise.resolve());
  let state: JailState = {
    ...j,
    namespaces: namespaces ? ['mnt', 'pid', 'ipc', 'uts', ...(full ? [] : ['user'])] : [],
    seccomp: c.driver.capabilities.seccomp,
  };
  let cgroup: VmCgroup | undefined;
  const choice = await hostCgroups();
  if (choice.host) {
    const planned = choice.host.open(c.state.id);
    // Recorded before it exists: if this process dies half-way, the reaper finds it.
    state = { ...state, cgroup: { version: choice.host.version, dirs: [...planned.dirs], ...limits } };
    c.state = { ...c.state, jail: state };
    await record();
    cgroup = await choice.host.create(c.state.id, limits);
    const made = cgroup;
    c.cleanup.push('remove the VM\'s cgroup', () => made.remove());
  } else {
    state = { ...state, cgroupWhy: choice.why };
    c.env.log.debug({ why: choice.why }, 'the VM gets no cgroup');
  }
  if (full) {
    // The VMM's directory: the VM's uid's alone. The driver hands it what it makes there
    // (overlays, the RAM file), as the jail in the spec tells it.
    await chown(c.spec.runDir, uid, gid);
    for (const f of await readdir(c.spec.runDir)) await chown(join(c.spec.runDir, f), uid, gid);
    // Second wall: were the mount namespace to fall, the VM's uid still may not read
    // fcvm's state or the image cache (VMs get their own image bound into their jail).
    for (const d of ['state', 'cache']) await chmod(join(c.env.layout.base, d), 0o700).catch(() => {});
  }
  const spec: JailSpec = { mode: j.mode, id: c.state.id, uid, gid, cgroup, limits, privateDir, namespaces };
  c.spec = { ...c.spec, jail: spec };
  c.state = { ...c.state, jail: state };
  await record();
}

let userNsCache: boolean | undefined;

/** True if this (unprivileged) user may make the namespaces of a jail: bubblewrap tries once. */
function userNamespacesAllowed(): boolean {
  if (userNsCache === undefined) {
    const r = spawnSync('bwrap', ['--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--ro-bind', '/', '/', 'true'], { stdio: 'ignore', timeout: 5000 });
    userNsCache = r.status === 0;
  }
  return userNsCache;
}
