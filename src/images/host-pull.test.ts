import { test } from 'node:test';
import assert from 'node:assert/strict';
import { onHostLoopback } from './host-pull.js';

test('a registry on the host\'s loopback is the host\'s to pull from; localhost/NAME is local storage', () => {
  for (const ref of ['localhost:5000/app:1', '127.0.0.1:5000/team/app', '127.0.0.1/app', '[::1]:5000/app']) assert.equal(onHostLoopback(ref), true, ref);
  for (const ref of ['localhost/bb', 'app', '172.30.0.1:5000/app', 'registry.lan:5000/app', 'docker.io/library/alpine', 'localhost.lan:5000/app', '127.0.0.1:5000'])
    assert.equal(onHostLoopback(ref), false, ref);
});
