/**
 * The guest's FUSE relay, compiled for this host's tests the way `fcvm setup` compiles
 * it for the initrd (src/setup/relay-build.ts). Cached under the temp directory by the
 * hash of its sources and compiler, so an edited relay is always rebuilt.
 */
import { existsSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashInputs } from '../../setup/content-address.js';
import { buildRelay, compilerVersion, RELAY_FLAGS, relaySources } from '../../setup/relay-build.js';

let cached: Promise<{ path?: string; why?: string }> | undefined;

/** The relay's path, or why it cannot be built here (no C compiler). */
export function testRelayBinary(): Promise<{ path?: string; why?: string }> {
  cached ??= (async () => {
    try {
      const path = join(tmpdir(), `fcvm-fuse-relay-${hashInputs(await relaySources(), await compilerVersion(), RELAY_FLAGS)}`);
      if (!existsSync(path)) {
        const tmp = `${path}.${process.pid}`;
        await buildRelay(tmp);
        renameSync(tmp, path);
      }
      return { path };
    } catch (e) {
      return { why: `cannot build the fuse relay with cc (apt-get install gcc libc6-dev): ${(e as Error).message.split('\n')[0]}` };
    }
  })();
  return cached;
}
