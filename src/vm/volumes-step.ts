import { writeFileSync } from 'node:fs';
import { fsCalls } from '../os/fs-calls.js';
import { ownersForProcess } from '../fuse/owners.js';
import { VolumeServer } from '../fuse/volume-server.js';
import type { VolumeTable } from '../fuse/table-snapshot.js';
import { resyncingTransport } from '../protocol/session-sync.js';
import type { Step } from '../util/steps.js';
import type { Ctx } from './run-context.js';

/**
 * Serves the VM's volumes on its `fuse` channel: the server lives in the supervisor and
 * ends with it (nothing is mounted on the host, so nothing can be left mounted). A
 * clone's server takes over its snapshot's tables and tells the guest to drop its caches.
 */
export const volumesStep: Step<Ctx> = {
  name: 'volumes',
  run: async (c) => {
    const volumes = c.opts.volumes.map((v, index) => ({ index, hostPath: v.host, readOnly: v.readOnly }));
    if (volumes.length === 0) return;
    const tables: VolumeTable[] | undefined = c.clone?.meta.volumes?.tables;
    const log = { warn: (m: string) => c.env.log.warn(m) };
    const server = new VolumeServer(volumes, await fsCalls(), ownersForProcess(), log, tables);
    c.cleanup.push('stop the volume server', () => {
      c.env.log.debug({ volumeOps: server.stats() }, 'volume server: requests and mean host time');
      // For bench/volume: where the time goes, host side.
      if (process.env.FCVM_VOLUME_STATS) writeFileSync(process.env.FCVM_VOLUME_STATS, JSON.stringify(server.stats(), null, 1));
      server.close();
    });
    const channel = await c.vm.connectChannel('fuse');
    // A startup snapshot's guest never mounted a volume: its relay starts afresh, as in a cold VM.
    const resumes = c.clone !== undefined && !c.clone.startup;
    server.attach(resumes ? resyncingTransport(channel) : channel, { invalidate: resumes });
    c.volumes = server;
  },
};
