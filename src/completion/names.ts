import { readdir } from 'node:fs/promises';
import type { Layout } from '../setup/layout.js';
import { isOwnerAlive, StateStore } from '../state/store.js';
import { endedVms } from '../state/ended.js';
import { run } from '../util/exec.js';
import type { NameSource } from './engine.js';

/**
 * Names for completion, read without side effects (no reaping, which a TAB press
 * should not do): running VMs' state files, ended VMs' records, snapshot directories,
 * the host's images.
 */
export function localNames(layout: Layout): NameSource {
  const vms = async () => (await new StateStore(layout.vmState).list()).flatMap((e) => (e.ok && isOwnerAlive(e.state) ? [e.state.name] : []));
  return {
    vms,
    kept: async () => [...new Set([...(await vms()), ...(await endedVms(layout.logs)).map((s) => s.name)])],
    tags: async () => (await readdir(layout.snapshots).catch(() => [] as string[])).filter((t) => !t.startsWith('.')),
    images: async () => {
      const out = await run('podman', ['images', '--format', '{{.Repository}}:{{.Tag}}']).catch(() => '');
      return out.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('<none>')).flatMap((l) => (l.endsWith(':latest') ? [l, l.slice(0, -7)] : [l]));
    },
  };
}
