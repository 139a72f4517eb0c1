// Bundles the guest agent into one ESM file for the guest's Node 18.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/agent/main.ts'],
  outfile: 'dist/agent/fcvm-agent.mjs',
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'esm',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
