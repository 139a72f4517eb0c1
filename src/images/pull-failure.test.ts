import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describePullFailure, type PullContext } from './pull-failure.js';

const ctx: PullContext = { tlsVerify: true, hasCerts: false, hasAuth: false, network: 'bridged' };
const img = '172.30.0.1:5000/team/app:1';

test('podman\'s pull errors become a registry, a cause and a hint', () => {
  const cases: Array<[string, RegExp, RegExp]> = [
    ['initializing source docker://172.30.0.1:5000/team/app:1: pinging container registry 172.30.0.1:5000: Get "https://172.30.0.1:5000/v2/": http: server gave HTTP response to HTTPS client', /plain HTTP/, /--tls-verify=false/],
    ['pinging container registry 172.30.0.1:5000: Get "https://172.30.0.1:5000/v2/": x509: certificate signed by unknown authority', /unknown authority/, /--cert-dir DIR/],
    ['reading manifest 1 in 172.30.0.1:5000/team/app: unauthorized: authentication required', /authentication required or refused/, /--creds USER:PASSWORD/],
    ['reading manifest 2 in 172.30.0.1:5000/team/app: manifest unknown: manifest unknown', /no such image or tag/, /image name and tag/],
    ['pinging container registry 172.30.0.1:5000: Get "https://172.30.0.1:5000/v2/": dial tcp 172.30.0.1:5000: connect: connection refused', /connection refused/, /172\.30\.0\.1/],
    ['Get "https://registry.example/v2/": dial tcp: lookup registry.example on 172.30.0.1:53: no such host', /does not resolve/, /resolvers/],
  ];
  for (const [msg, cause, hint] of cases) {
    const d = describePullFailure(img, msg, ctx);
    assert.equal(d.registry, '172.30.0.1:5000');
    assert.match(d.cause, cause, msg);
    assert.match(d.hint, hint, msg);
  }
});

test('hints follow what was given', () => {
  const auth = describePullFailure(img, 'unauthorized: authentication required', { ...ctx, hasAuth: true });
  assert.match(auth.hint, /Check the user and password/);
  const ca = describePullFailure(img, 'x509: certificate signed by unknown authority', { ...ctx, hasCerts: true });
  assert.match(ca.hint, /did not sign it/);
  const rootless = describePullFailure(img, 'connect: connection refused', { ...ctx, network: 'rootless' });
  assert.match(rootless.hint, /10\.0\.2\.2/);
});

test('an unknown error keeps podman\'s words, on one line', () => {
  const d = describePullFailure('docker.io/library/alpine:3.20', 'something\nodd happened', ctx);
  assert.equal(d.registry, 'docker.io');
  assert.equal(d.cause, 'something odd happened');
});
