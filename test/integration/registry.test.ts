import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { assertNoLeftovers, ctrLines, fcvm, layout, stateFile, vmsUnavailableReason, waitFor } from '../helpers.js';
import { registryUnavailableReason, startRegistry, type TestRegistry } from '../registry.js';

const USER = 'fcvm-puller';
const PASSWORD = `s3cret-${process.pid}-pw`;
const AUTH = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
const REPO = 'fcvm-it/bb:1';

/** Asserts a one-line fcvm error with exit code 125 that matches `re`. */
function assertOneLineError(r: { exitCode: number; stderr: string }, re: RegExp): void {
  assert.equal(r.exitCode, 125, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, re);
}

/** Asserts that neither the password nor its base64 form is in `text`. */
function assertNoSecret(text: string, where: string): void {
  assert.ok(!text.includes(PASSWORD) && !text.includes(AUTH), `the credentials appear in ${where}`);
}

describe('pulls from a real registry through the guest\'s gateway', { concurrency: false }, () => {
  let plain: TestRegistry | undefined;
  let secure: TestRegistry | undefined;
  let dir = '';
  const why = vmsUnavailableReason() ?? registryUnavailableReason();

  before(async () => {
    if (why) return void process.stderr.write(`\n*** SKIPPED registry pulls: ${why} ***\n`);
    dir = mkdtempSync(join(tmpdir(), 'fcvm-it-pull-'));
    plain = await startRegistry({ tls: false, image: 'localhost/bb', repo: REPO });
    secure = await startRegistry({ tls: true, auth: { user: USER, password: PASSWORD }, image: 'localhost/bb', repo: REPO });
  });

  after(async () => {
    await plain?.stop();
    await secure?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('plain HTTP: refused with the reason, then pulled with --tls-verify=false', async (t) => {
    if (why) return t.skip(why);
    const image = `${plain!.guestHost}/${REPO}`;
    const refused = await fcvm(['podman', 'run', image, '--', 'echo', 'pulled']);
    assertOneLineError(refused, new RegExp(`^fcvm: could not pull image "${image}" from registry ${plain!.guestHost}: it speaks plain HTTP, and TLS is required\\. Add --tls-verify=false`));
    const r = await fcvm(['podman', 'run', '--tls-verify=false', image, '--', 'echo', 'pulled']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(ctrLines(r, 'out'), ['pulled']);
    assertNoLeftovers();
  });

  test('a pulled image\'s HEALTHCHECK runs, read in the guest; --health-interval goes over it', async (t) => {
    if (why) return t.skip(why);
    plain!.push('localhost/bb-health', 'fcvm-it/bb-health:1');
    const image = `${plain!.guestHost}/fcvm-it/bb-health:1`;
    // bb-health: HEALTHCHECK test -f /tmp/ok every 2 s, 2 retries.
    const r = await fcvm(['podman', 'run', '-d', '--name', 'it-pull-health', '--tls-verify=false', '--health-interval', '1s', image, '--', 'sleep', '600']);
    assert.equal(r.exitCode, 0, r.stderr);
    try {
      const status = async () => (JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string; transitions: { status: string }[] }[]).find((v) => v.name === 'it-pull-health');
      await waitFor(async () => (await status())?.status === 'unhealthy', 240_000, 'unhealthy');
      const touch = await fcvm(['exec', 'it-pull-health', '--', 'touch', '/tmp/ok']);
      assert.equal(touch.exitCode, 0, touch.stderr);
      const v = await waitFor(async () => {
        const s = await status();
        return s?.status === 'healthy' ? s : undefined;
      }, 60_000, 'healthy');
      assert.deepEqual(v.transitions.map((x) => x.status), ['starting', 'running', 'unhealthy', 'healthy']);
      const ps = await fcvm(['ps', '--format', '{{.Names}} {{.Status}}']);
      assert.match(ps.stdout, /^it-pull-health Up .+ \(healthy\)$/m);
    } finally {
      await fcvm(['rm', '-f', 'it-pull-health']);
    }
    assertNoLeftovers();
  });

  test('plain HTTP in rootless mode: QEMU\'s user network leads 10.0.2.2 to the host\'s loopback', async (t) => {
    if (why) return t.skip(why);
    const image = `10.0.2.2:${plain!.port}/${REPO}`;
    const r = await fcvm(['podman', 'run', '--network', 'rootless', '--hypervisor', 'qemu', '--tls-verify=false', '--pull', 'always', image, '--', 'echo', 'pulled-rootless']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(ctrLines(r, 'out'), ['pulled-rootless']);
    assertNoLeftovers();
  });

  test('a registry named by the host\'s loopback (localhost:PORT, 127.0.0.1:PORT) is pulled on the host, with its TLS choice, CA and credentials', async (t) => {
    if (why) return t.skip(why);
    const plainRef = `localhost:${plain!.port}/${REPO}`;
    const secureRef = `127.0.0.1:${secure!.port}/${REPO}`;
    const rmi = () => {
      for (const ref of [plainRef, secureRef]) spawnSync('podman', ['rmi', '--force', ref], { stdio: 'ignore' });
    };
    rmi();
    try {
      const refused = await fcvm(['podman', 'run', '--rm', plainRef, '--', 'true']);
      assertOneLineError(refused, new RegExp(`^fcvm: could not pull image "${plainRef}" from registry localhost:${plain!.port}: it speaks plain HTTP, and TLS is required\\. Add --tls-verify=false`));
      const r = await fcvm(['podman', 'run', '--rm', '--tls-verify=false', plainRef, '--', 'echo', 'from-host-loopback']);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stdout, 'from-host-loopback\n');
      assert.equal(spawnSync('podman', ['image', 'exists', plainRef]).status, 0, 'the host\'s podman storage has it now, as after podman pull');

      const noCreds = await fcvm(['podman', 'run', '--rm', '--cert-dir', secure!.caDir!, secureRef, '--', 'true'], { env: { REGISTRY_AUTH_FILE: join(dir, 'none.json') } });
      assertOneLineError(noCreds, /authentication required or refused\. Give --creds USER:PASSWORD/);
      const s = await fcvm(['podman', 'run', '--rm', '--cert-dir', secure!.caDir!, '--creds', `${USER}:${PASSWORD}`, secureRef, '--', 'echo', 'with-creds']);
      assert.equal(s.exitCode, 0, s.stderr);
      assert.equal(s.stdout, 'with-creds\n');
      assertNoSecret(s.stderr, 'the run\'s output');
      assert.deepEqual(readdirSync('/tmp').filter((f) => f.startsWith('.fcvm-pull.')), [], 'the pull\'s auth file is gone');
    } finally {
      rmi();
    }
    assertNoLeftovers();
  });

  test('TLS with the test\'s own CA and --creds: the credentials are nowhere to be found, in the host or the guest', async (t) => {
    if (why) return t.skip(why);
    const image = `${secure!.guestHost}/${REPO}`;
    const name = 'it-creds';
    const d = await fcvm(['podman', 'run', '-d', '--name', name, '--cert-dir', secure!.caDir!, '--creds', `${USER}:${PASSWORD}`, image, '--', 'sleep', '600']);
    try {
      assert.equal(d.exitCode, 0, d.stderr);
      const vm = await waitFor(async () => {
        const l = (JSON.parse((await fcvm(['ls', '--json'])).stdout || '[]') as { name: string; status: string; pid: number }[]).find((v) => v.name === name);
        if (!l) throw new Error(`the VM ended: ${(await fcvm(['logs', name])).stderr}`);
        return l.status === 'healthy' ? l : undefined;
      }, 240_000, 'the pulled container to run');
      // The host: ls, inspect, logs, the state file, the supervisor's command line and environment.
      assertNoSecret((await fcvm(['ls', '--json'])).stdout, 'ls --json');
      const inspected = await fcvm(['inspect', name]);
      assertNoSecret(inspected.stdout, 'inspect');
      assert.equal(JSON.parse(inspected.stdout)[0].plan.pull.credentials, 'creds');
      const logs = await fcvm(['logs', name]);
      assertNoSecret(logs.stdout + logs.stderr, 'logs');
      assertNoSecret(readFileSync(stateFile(name), 'utf8'), 'the state file');
      assertNoSecret(readFileSync(`/proc/${vm.pid}/cmdline`, 'utf8'), 'the supervisor\'s command line');
      assertNoSecret(readFileSync(`/proc/${vm.pid}/environ`, 'utf8'), 'the supervisor\'s environment');
      // The guest: every process's command line and environment, and the files it keeps.
      // The patterns are put together in the shell, so its own command line does not match,
      // and every command line is read before the grep that holds them starts.
      const halves = (x: string) => `'${x.slice(0, 4)}' '${x.slice(4)}'`;
      const scan = await fcvm(['exec', name, '--vm', '--', 'sh', '-c',
        `set -- ${halves(PASSWORD)} ${halves(AUTH)}; P="$1$2"; A="$3$4";
         all=$(cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n');
         printf '%s\\n' "$all" | grep -c -e "$P" -e "$A";
         grep -rl -e "$P" -e "$A" /run /tmp /root /etc /var/lib/containers /var/tmp 2>/dev/null; ls -d /run/fcvm/pull-* 2>&1; true`]);
      assert.equal(scan.exitCode, 0, scan.stderr);
      assert.match(scan.stdout, /^0\n/, `guest processes carry the credentials:\n${scan.stdout}`);
      assert.doesNotMatch(scan.stdout, /^\//m, `guest files hold the credentials:\n${scan.stdout}`);
      assert.match(scan.stdout, /No such file or directory/, 'the pull\'s files are gone');
    } finally {
      await fcvm(['stop', name]);
      for (const f of readdirSync(layout.logs)) if (f.startsWith(`${name}.`)) {
        assertNoSecret(readFileSync(join(layout.logs, f), 'utf8'), 'the kept log');
        rmSync(join(layout.logs, f), { force: true });
      }
    }
    assertNoLeftovers();
  });

  test('TLS with an --authfile in podman\'s format and --pull always; without credentials, a one-line error', async (t) => {
    if (why) return t.skip(why);
    const image = `${secure!.guestHost}/${REPO}`;
    const authfile = join(dir, 'auth.json');
    writeFileSync(authfile, JSON.stringify({ auths: { [secure!.guestHost]: { auth: AUTH } } }), { mode: 0o600 });
    const r = await fcvm(['podman', 'run', '--pull', 'always', '--cert-dir', secure!.caDir!, '--authfile', authfile, image, '--', 'echo', 'via-authfile']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(ctrLines(r, 'out'), ['via-authfile']);
    assertNoSecret(r.stderr, 'the run\'s output');
    const anonymous = await fcvm(['podman', 'run', '--cert-dir', secure!.caDir!, image, '--', 'true'], { env: { REGISTRY_AUTH_FILE: join(dir, 'none.json') } });
    assertOneLineError(anonymous, new RegExp(`^fcvm: could not pull image "${image}" from registry ${secure!.guestHost}: authentication required or refused\\. Give --creds USER:PASSWORD`));
    assertNoLeftovers();
  });

  test('--pull never refuses an image the host lacks before anything boots; an authfile without the registry is refused', async (t) => {
    if (why) return t.skip(why);
    const image = `${secure!.guestHost}/${REPO}`;
    assertOneLineError(await fcvm(['podman', 'run', '--pull', 'never', image]), /is not in the host's podman storage, and --pull never forbids a pull/);
    const other = join(dir, 'other.json');
    writeFileSync(other, JSON.stringify({ auths: { 'quay.io': { auth: AUTH } } }));
    assertOneLineError(await fcvm(['podman', 'run', '--authfile', other, image]), new RegExp(`invalid --authfile "${other}": it has no credentials for registry "${secure!.guestHost}"`));
    assertNoLeftovers();
  });
});

