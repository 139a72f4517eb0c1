import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authFromCreds, authFromFile, defaultAuthFiles, registryOf } from './registry-auth.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

test('the registry of a reference, as podman reads it', () => {
  assert.equal(registryOf('172.30.0.1:5000/team/app:1'), '172.30.0.1:5000');
  assert.equal(registryOf('quay.io/podman/hello'), 'quay.io');
  assert.equal(registryOf('localhost/bb'), 'localhost');
  assert.equal(registryOf('library/alpine'), 'docker.io');
  assert.equal(registryOf('alpine:3.20'), 'docker.io');
});

test('auth.json: the most specific key wins; schemes, slashes and Docker\'s legacy key are understood', () => {
  const file = JSON.stringify({
    auths: {
      'reg:5000': { auth: b64('all:1') },
      'reg:5000/team': { auth: b64('team:2') },
      'https://index.docker.io/v1/': { auth: b64('hub:3') },
    },
  });
  assert.deepEqual(authFromFile('reg:5000/team/app:1', file, 'f'), { registry: 'reg:5000/team', auth: b64('team:2') });
  assert.deepEqual(authFromFile('reg:5000/other/app@sha256:ab', file, 'f'), { registry: 'reg:5000', auth: b64('all:1') });
  assert.deepEqual(authFromFile('alpine', file, 'f'), { registry: 'docker.io', auth: b64('hub:3') });
  assert.equal(authFromFile('quay.io/x/y', file, 'f'), undefined);
});

test('auth.json errors name the file and never the secret', () => {
  assert.throws(() => authFromFile('reg/x', '{', '/a.json'), /invalid --authfile "\/a\.json": not JSON/);
  assert.throws(() => authFromFile('reg:1/x', JSON.stringify({ auths: { 'reg:1': { auth: 'bm9jb2xvbg==' } } }), '/a.json'), /not base64 of USER:PASSWORD/);
  assert.throws(() => authFromFile('reg:1/x', JSON.stringify({ credHelpers: { 'reg:1': 'ecr-login' } }), '/a.json'), /credential helper "ecr-login"/);
});

test('--creds becomes an entry for the image\'s registry; a bad value is not echoed', () => {
  assert.deepEqual(authFromCreds('reg:5000/app', 'u:p:with:colons'), { registry: 'reg:5000', auth: b64('u:p:with:colons') });
  assert.throws(() => authFromCreds('reg/x', 'justsecret'), (e: Error) => /expected USER:PASSWORD/.test(e.message) && !e.message.includes('justsecret'));
  assert.throws(() => authFromCreds('reg/x', ':secret'), (e: Error) => !e.message.includes('secret'));
});

test('podman\'s own auth files, in its order', () => {
  assert.deepEqual(defaultAuthFiles({ REGISTRY_AUTH_FILE: '/x.json' }, 0, '/root'), ['/x.json']);
  assert.deepEqual(defaultAuthFiles({}, 0, '/root'), ['/run/containers/0/auth.json', '/root/.config/containers/auth.json', '/root/.docker/config.json']);
  assert.equal(defaultAuthFiles({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000, '/home/u')[0], '/run/user/1000/containers/auth.json');
});
