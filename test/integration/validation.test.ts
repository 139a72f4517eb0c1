import { test } from 'node:test';
import { FirecrackerDriver } from '../../src/vmm/firecracker/driver.js';
import { createLogger } from '../../src/util/log.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertNoLeftovers, fcvm, vmsAvailable } from '../helpers.js';

/** Asserts a one-line fcvm error with exit code 125 that matches `re`. */
function assertOneLineError(r: { exitCode: number; stderr: string }, re: RegExp): void {
  assert.equal(r.exitCode, 125, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^fcvm: /);
  assert.match(lines[0]!, re);
}

const cases: Array<[string, string[], RegExp]> = [
  ['a path-like name', ['--name', '../etc', 'localhost/bb'], /invalid VM name "\.\.\/etc": it looks like a path\. Use 1-63/],
  ['a name with shell metacharacters', ['--name', 'a;reboot', 'localhost/bb'], /invalid VM name "a;reboot": it contains characters/],
  ['an overlong name', ['--name', 'x'.repeat(70), 'localhost/bb'], /70 characters long, the limit is 63/],
  ['an unknown flag', ['--frobnicate', 'localhost/bb'], /unknown option '--frobnicate'.*--help/],
  ['a bad --env', ['--env', 'BAD KEY=x', 'localhost/bb'], /invalid --env "BAD KEY=x": "BAD KEY" is not a valid variable name\. Use --env KEY=VALUE/],
  ['a bad --mem', ['--mem', 'lots', 'localhost/bb'], /invalid --mem "lots": not a size\. Give the guest memory in MiB/],
  ['a too-small --mem', ['--mem', '16', 'localhost/bb'], /16 MiB is outside/],
  ['a bad --cpu', ['--cpu', 'two', 'localhost/bb'], /invalid --cpu "two"/],
  ['an unknown --hypervisor', ['--hypervisor', 'vbox', 'localhost/bb'], /invalid --hypervisor "vbox": unknown value\. Use one of: qemu, firecracker, auto/],
  ['an unknown --accel', ['--accel', 'hvf', 'localhost/bb'], /invalid --accel "hvf"/],
  ['no image', [], /no image given\. Usage: fcvm podman run/],
  ['an invalid --publish', ['--publish', '1:2:3:4', 'localhost/bb'], /invalid --publish "1:2:3:4": expected \[HOSTIP:\]\[HOSTPORT:\]GUESTPORT\. Use --publish/],
  ['a --publish port out of range', ['--publish', '8080:99999', 'localhost/bb'], /port 99999 is outside 1-65535/],
  ['an unknown --network', ['--network', 'mesh', 'localhost/bb'], /invalid --network "mesh": unknown value\. Use one of: bridged, rootless, none/],
  ['--publish with --network none', ['--network', 'none', '--publish', '8080:80', 'localhost/bb'], /--network none has no ports to publish/],
  ['a bad --health-check', ['--health-check', 'ftp://x/', 'localhost/bb'], /only http:\/\/ is supported/],
  ['both --cmd and a command', ['--cmd', 'true', 'localhost/bb', '--', 'false'], /both --cmd and a command/],
  ['a podman flag fcvm does not take', ['--memory', '1g', 'localhost/bb'], /fcvm podman run does not take --memory: the VM is the container's resource boundary\. Use --mem SIZE/],
  ['a podman switch fcvm does not take', ['--sig-proxy', 'localhost/bb'], /does not take --sig-proxy: /],
  ['a --publish-all that is not true or false', ['--publish-all=maybe', 'localhost/bb'], /invalid --publish-all "maybe": not true or false/],
  ['-P with --network none', ['--network', 'none', '-P', 'localhost/bb'], /invalid --publish-all "true": a VM with --network none has no ports to publish/],
  ['a bad --health-interval', ['--health-interval', '30', 'localhost/bb'], /invalid --health-interval "30": not a duration\. Give --health-interval as a duration with its unit/],
  ['a podman switch fcvm does not take, with a value', ['--oom-kill-disable=true', 'localhost/bb'], /does not take --oom-kill-disable: /],
  ['a --tls-verify that is not true or false', ['--tls-verify=maybe', 'localhost/bb'], /invalid --tls-verify "maybe": not true or false\. Write --tls-verify=false/],
  ['a --read-only that is not true or false', ['--read-only=yes', 'localhost/bb'], /invalid --read-only "yes": not true or false/],
  ['a bad --cap-add', ['--cap-add', 'NET ADMIN', 'localhost/bb'], /invalid --cap-add "NET ADMIN": not a value the guest's podman takes\. For example --cap-add NET_ADMIN/],
  ['a -v that names a volume', ['-v', 'data:/data', 'localhost/bb'], /invalid --volume "data:\/data": "data" would be a named volume/],
  ['--pull newer', ['--pull', 'newer', 'localhost/bb'], /invalid --pull "newer"/],
  ['--creds without a password', ['--creds', 'justone', 'localhost/bb'], /invalid --creds "\(no password\)": expected USER:PASSWORD/],
  ['a relative --workdir', ['-w', 'data', 'localhost/bb'], /invalid --workdir "data": not an absolute path/],
  ['a missing --env-file', ['--env-file', '/no/such.env', 'localhost/bb'], /invalid --env-file "\/no\/such\.env": cannot read it \(ENOENT\)/],
  ['a missing --cert-dir', ['--cert-dir', '/no/such/dir', 'localhost/bb'], /invalid --cert-dir "\/no\/such\/dir": cannot read it/],
  ['a bad --label', ['--label', '=x', 'localhost/bb'], /invalid --label "=x": the key is empty/],
];

for (const [what, args, re] of cases) {
  test(`podman run refuses ${what} with a one-line error`, async () => {
    assertOneLineError(await fcvm(['podman', 'run', ...args]), re);
  });
}

test('a local image that the host lacks is refused before any VM boots', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await fcvm(['podman', 'run', 'localhost/does-not-exist']);
  assertOneLineError(r, /image "localhost\/does-not-exist" is not in the host's podman storage\. Check "podman images"/);
  assertNoLeftovers();
});

test('a missing setup says to run fcvm setup', async (t) => {
  if (!vmsAvailable(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-empty-'));
  try {
    const r = await fcvm(['--base-dir', dir, 'podman', 'run', 'localhost/bb']);
    assertOneLineError(r, new RegExp(`fcvm is not set up in ${dir} .*Run "fcvm setup" first, or add --setup`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('firecracker, when asked for where it cannot run, is refused with the reason', async (t) => {
  if (!vmsAvailable(t)) return;
  const why = await new FirecrackerDriver(createLogger('error')).unavailableReason();
  if (!why) return t.skip('Firecracker can run here');
  const r = await fcvm(['podman', 'run', '--hypervisor', 'firecracker', 'localhost/bb']);
  assertOneLineError(r, /hypervisor "firecracker" is not available: .*Use --hypervisor qemu/);
  assert.ok(r.stderr.includes(why), `the reason is given: ${why}`);
});

test('a remote image is pulled in the guest and, with no network, fails clearly', async (t) => {
  if (!vmsAvailable(t)) return;
  const r = await fcvm(['podman', 'run', 'docker.io/library/alpine:3.20', '--', 'true']);
  assertOneLineError(r, /could not pull image "docker\.io\/library\/alpine:3\.20" from registry docker\.io: /);
  assertNoLeftovers();
});

test('ls rejects a bad --pid', async () => {
  assertOneLineError(await fcvm(['ls', '--pid', 'abc']), /invalid --pid "abc"/);
});
