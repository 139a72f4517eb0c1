// Runs the test suite with node's test runner: unit tests next to the code in src/,
// then integration tests (real VMs) in test/integration. `node scripts/run-tests.mjs unit`
// runs only the unit tests.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const find = (dir) =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? find(p) : p.endsWith('.test.js') ? [p] : [];
  });

const files = find('dist/src').sort();
if (process.argv[2] !== 'unit') {
  if (process.getuid?.() === 0) {
    const r = spawnSync('bash', ['scripts/make-test-image.sh'], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  files.push(...find('dist/test').sort());
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
