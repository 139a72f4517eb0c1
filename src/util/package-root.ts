import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory holding fcvm's package.json, found from this file's location. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the fcvm package root');
    dir = up;
  }
  return dir;
}

export const assetPath = (...parts: string[]) => join(packageRoot(), 'assets', ...parts);
export const agentBundlePath = () => join(packageRoot(), 'dist', 'agent', 'fcvm-agent.mjs');

/** The hostile agent, started instead of the agent by fcvm.agent=hostile:CASE (tests of the host's defences). */
export const hostileAgentBundlePath = () => join(packageRoot(), 'dist', 'agent', 'fcvm-hostile-agent.mjs');
