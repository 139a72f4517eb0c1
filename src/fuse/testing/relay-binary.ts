/**
 * The guest's native programs (the FUSE relay, the exec spawner), compiled for this host's
 * tests the way `fcvm setup` compiles them for the initrd (src/setup/guest-programs.ts).
 * Cached under the temp directory by the hash of their sources and compiler, so an edited
 * program is always rebuilt.
 */
import { existsSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashInputs } from '../../setup/content-address.js';
import { buildProgram, compilerVersion, PROGRAM_FLAGS, programSources, type GuestProgram } from '../../setup/guest-programs.js';

const cached = new Map<GuestProgram, Promise<{ path?: string; why?: string }>>();

/** The relay's path, or why it cannot be built here (no C compiler). */
export const testRelayBinary = () => testProgramBinary('fuse-relay');

/** A guest program's path, or why it cannot be built here (no C compiler). */
export function testProgramBinary(program: GuestProgram): Promise<{ path?: string; why?: string }> {
  const built = cached.get(program) ?? (async () => {
    try {
      const path = join(tmpdir(), `fcvm-${program}-${hashInputs(await programSources(program), await compilerVersion(), PROGRAM_FLAGS)}`);
      if (!existsSync(path)) {
        const tmp = `${path}.${process.pid}`;
        await buildProgram(program, tmp);
        renameSync(tmp, path);
      }
      return { path };
    } catch (e) {
      return { why: `cannot build the ${program} with cc (apt-get install gcc libc6-dev): ${(e as Error).message.split('\n')[0]}` };
    }
  })();
  cached.set(program, built);
  return built;
}
