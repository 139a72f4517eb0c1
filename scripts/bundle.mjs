// Bundles the CLI (for start-up time: one file instead of hundreds of module loads)
// and the guest agent (one file for the guest's Node 18). koffi is a native addon and
// stays external in both.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunk names carry content hashes: start clean so old builds' chunks do not pile up.
rmSync('dist/chunks', { recursive: true, force: true });

const common = { bundle: true, platform: 'node', format: 'esm', legalComments: 'none', logLevel: 'warning', external: ['koffi'] };

await Promise.all([
  build({
    ...common,
    // Split chunks: each command loads only what it uses (start-up time of `fcvm exec`).
    // The page server's worker threads load their own entry (src/snapshot/uffd/page-server.ts).
    entryPoints: { fcvm: 'src/cli/main.ts', 'uffd-worker': 'src/snapshot/uffd/worker.ts' },
    outdir: 'dist',
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    target: 'node20',
    // Minified for parse time; the source map keeps stacks readable (--enable-source-maps).
    minify: true,
    keepNames: true,
    sourcemap: true,
    banner: { js: "import { createRequire as __fcvmRequire } from 'node:module'; const require = __fcvmRequire(import.meta.url);" },
  }),
  build({ ...common, entryPoints: ['src/agent/main.ts'], outfile: 'dist/agent/fcvm-agent.mjs', target: 'node18', minify: true }),
  // The hostile agent for the host's defence tests (fcvm.agent=hostile:CASE).
  build({ ...common, entryPoints: ['src/agent/hostile/main.ts'], outfile: 'dist/agent/fcvm-hostile-agent.mjs', target: 'node18', minify: true }),
]);
