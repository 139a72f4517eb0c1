import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEnvFile, parseLabels, podmanRunExtras, pullOptions } from './podman-run-flags.js';
import { refuseUnsupported, PODMAN_RUN_UNSUPPORTED } from './podman-unsupported.js';
import { PODMAN_RUN_PASSTHROUGH } from './podman-passthrough.js';
import { runOptionsFromFlags } from './run-options.js';
import type { FcvmError } from '../errors/fcvm-error.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
/** Asserts `fn` throws an FcvmError whose one-line rendering (message and hint) matches. */
const throwsLine = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: FcvmError) => re.test(e.oneLine()) || assert.fail(e.oneLine()));

test('env files: podman\'s format, verbatim values, comments, host values for bare keys', () => {
  const text = '# a comment\n\nA=1\n  B=two words\nQ="kept"\nEQ=x=y\nHOSTY\nUNSET_ONE\r\n';
  assert.deepEqual(parseEnvFile(text, 'f', { HOSTY: 'h' }), { A: '1', B: 'two words', Q: '"kept"', EQ: 'x=y', HOSTY: 'h' });
  assert.throws(() => parseEnvFile('OK=1\nBAD KEY=2\n', '/app.env', {}), /invalid --env-file "\/app\.env": line 2: "BAD KEY" is not a valid variable name/);
});

test('--env wins over --env-file, as in podman', () => {
  const o = runOptionsFromFlags('localhost/bb', [], { env: ['A=flag'] }, {}, { envFiles: [{ path: 'f', text: 'A=file\nB=file\n' }] });
  assert.deepEqual(o.env, { A: 'flag', B: 'file' });
});

test('labels: KEY=VALUE or a bare KEY', () => {
  assert.deepEqual(parseLabels(['team=a', 'x.y/z=1=2', 'flag']), { team: 'a', 'x.y/z': '1=2', flag: '' });
  assert.throws(() => parseLabels(['=a']), /the key is empty/);
  assert.throws(() => parseLabels(['a b=1']), /not a label key/);
});

test('--label-file: its labels first, --label over them; --tz local is the host\'s zone; --no-hosts refuses --add-host', () => {
  const o = runOptionsFromFlags('localhost/bb', [], { label: ['team=flag'], labelFile: ['f'] } as never, {},
    { labelFiles: [{ path: 'f', text: '# labels\n\nteam=file\n  tier=web  \n' }], hostZone: 'Asia/Tokyo' });
  assert.deepEqual(o.labels, { team: 'flag', tier: 'web' });
  const tz = (zone: string, hostZone?: string) => runOptionsFromFlags('localhost/bb', [], { tz: zone } as never, {}, hostZone ? { hostZone } : {}).podmanOptions;
  assert.deepEqual(tz('local', 'Asia/Tokyo'), ['--tz=Asia/Tokyo']);
  assert.deepEqual(tz('local'), ['--tz=UTC']);
  assert.deepEqual(tz('America/New_York'), ['--tz=America/New_York']);
  throwsLine(() => runOptionsFromFlags('localhost/bb', [], { hosts: false, addHost: ['a:1.2.3.4'] } as never, {}), /--no-hosts and --add-host were both given.*Leave out one of them/);
  assert.deepEqual(runOptionsFromFlags('localhost/bb', [], { hosts: false } as never, {}).podmanOptions, ['--no-hosts'], 'commander\'s --no-hosts');
  assert.deepEqual(runOptionsFromFlags('localhost/bb', [], { hosts: 'false' } as never, {}).podmanOptions, ['--no-hosts=false']);
  assert.deepEqual(runOptionsFromFlags('localhost/bb', [], { hosts: true } as never, {}).podmanOptions, [], 'not given');
});

test('workdir, user and hostname are checked before anything boots', () => {
  const extras = (f: object) => podmanRunExtras('img', f, {}, {});
  assert.equal(extras({ workdir: '/data' }).workdir, '/data');
  assert.throws(() => extras({ workdir: 'data' }), /invalid --workdir "data": not an absolute path/);
  assert.equal(extras({ user: '1000:1000' }).user, '1000:1000');
  assert.throws(() => extras({ user: 'a b' }), /invalid --user/);
  assert.throws(() => extras({ hostname: '-h' }), /invalid --hostname/);
  assert.equal(extras({ entrypoint: '' }).entrypoint, '');
  const d = extras({});
  assert.equal(d.interactive || d.tty || d.detach || d.rm || d.init, false);
});

test('pull policy and TLS: podman\'s spellings', () => {
  assert.deepEqual(pullOptions('r/x', {}, {}), { policy: 'missing', tlsVerify: true });
  assert.equal(pullOptions('r/x', { tlsVerify: 'false', pull: 'always' }, {}).tlsVerify, false);
  assert.equal(pullOptions('r/x', { tlsVerify: true }, {}).tlsVerify, true);
  throwsLine(() => pullOptions('r/x', { tlsVerify: 'localhost/bb' }, {}), /invalid --tls-verify "localhost\/bb": not true or false\. Write --tls-verify=false/);
  assert.throws(() => pullOptions('r/x', { pull: 'newer' }, {}), /invalid --pull "newer"/);
  throwsLine(() => pullOptions('r/x', { pull: 'sometimes' }, {}), /Use one of: always, missing, never/);
});

test('credentials: --creds, --authfile (which must hold the registry), or podman\'s own files', () => {
  const img = 'reg:5000/team/app:1';
  assert.deepEqual(pullOptions(img, { creds: 'u:p' }, {}).auth, { registry: 'reg:5000', auth: b64('u:p') });
  assert.throws(() => pullOptions(img, { creds: 'u:p', authfile: 'f' }, {}), /both --creds and --authfile/);
  const file = { path: '/a.json', text: JSON.stringify({ auths: { 'reg:5000': { auth: b64('u:p') } } }) };
  assert.equal(pullOptions(img, { authfile: '/a.json' }, { authfile: file }).authFrom, 'authfile');
  assert.throws(() => pullOptions('quay.io/x', { authfile: '/a.json' }, { authfile: file }), /it has no credentials for registry "quay\.io"/);
  const broken = { path: '/d.json', text: '{' };
  assert.deepEqual(pullOptions(img, {}, { defaultAuthFiles: [broken, file] }).auth, { registry: 'reg:5000', auth: b64('u:p') }, 'a broken file nobody named is skipped');
  assert.equal(pullOptions('quay.io/x', {}, { defaultAuthFiles: [file] }).auth, undefined);
});

test('podman flags fcvm does not take are refused by name, with what does the job', () => {
  throwsLine(() => refuseUnsupported({ memory: '1g' }), /^fcvm podman run does not take --memory: the VM is the container's resource boundary\. Use --mem SIZE/);
  assert.throws(() => refuseUnsupported({ secret: 'db' }), /does not take --secret/);
  assert.throws(() => runOptionsFromFlags('img', [], { pod: 'p' } as object), /does not take --pod: each container is a VM of its own/);
  refuseUnsupported({ name: 'x', tty: true, hosts: false, healthcheck: true });
  for (const u of PODMAN_RUN_UNSUPPORTED) assert.ok(u.hint.length > 0 && u.why.length > 0, u.spec);
  const supported = ['--interactive', '--tty', '--detach', '--rm', '--workdir', '--user', '--entrypoint', '--hostname', '--label', '--env-file', '--init', '--pull', '--tls-verify', '--cert-dir', '--creds', '--authfile', '--name', '--env', '--publish', '--network', '--privileged', '--stop-timeout', '--volume', '--mount',
    ...PODMAN_RUN_PASSTHROUGH.map((f) => f.spec.match(/--[a-z0-9-]+/)![0])];
  for (const s of supported) assert.ok(!PODMAN_RUN_UNSUPPORTED.some((u) => u.spec.includes(`${s} `) || u.spec.endsWith(s)), s);
});
