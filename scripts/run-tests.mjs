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

// A test file that hangs (even one whose event loop is blocked) is killed after this
// long and fails with "test timed out", and the run goes on: a hang costs one file's
// limit, never CI's whole budget. The longest file (the inception suite) takes about 5 min.
const FILE_LIMIT_MS = Number(process.env.FCVM_TEST_FILE_TIMEOUT_S ?? 1500) * 1000;
const run = (files, env = {}) =>
  spawnSync(process.execPath, ['--test', '--test-concurrency=1', `--test-timeout=${FILE_LIMIT_MS}`, '--test-reporter=spec', ...files], { stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1;

const unit = find('dist/src').sort();
if (process.argv[2] === 'unit') process.exit(run(unit));
if (process.getuid?.() === 0) {
  const r = spawnSync('bash', ['scripts/make-test-image.sh'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const integration = find('dist/test').sort();
// The whole integration suite runs once per hypervisor that can run here: QEMU always,
// Firecracker where its binary and a KVM that runs ordinary kernels exist.
const { FirecrackerDriver } = await import('../dist/src/vmm/firecracker/driver.js');
const quiet = { debug() {}, info() {}, warn() {}, error() {}, isLevelEnabled: () => false };
const fcWhy = await new FirecrackerDriver(quiet).unavailableReason();
let status = run([...unit, ...integration], { FCVM_HYPERVISOR: 'qemu' });
if (fcWhy) process.stdout.write(`\n*** SKIPPED the Firecracker run of the integration suite: ${fcWhy} ***\n`);
else status ||= run(integration, { FCVM_HYPERVISOR: 'firecracker' });
process.exit(status);
