import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGoDuration, parseHealthCmd, parseHealthFlags } from './health-flags.js';
import { applyHealthOverride, healthcheckFrom } from '../protocol/healthcheck.js';
import { isFcvmError } from '../errors/fcvm-error.js';

const refused = (f: () => unknown, re: RegExp) => assert.throws(f, (e) => isFcvmError(e) && re.test(e.message));

test('Go durations, as podman\'s --health-* flags take them', () => {
  assert.equal(parseGoDuration('--health-interval', '30s'), 30_000);
  assert.equal(parseGoDuration('--health-interval', '1m30s'), 90_000);
  assert.equal(parseGoDuration('--health-interval', '500ms'), 500);
  assert.equal(parseGoDuration('--health-interval', '1.5s'), 1500);
  assert.equal(parseGoDuration('--health-interval', '2h'), 7_200_000);
  assert.equal(parseGoDuration('--health-start-period', '0'), 0);
  for (const bad of ['30', '', 's', '1x', '1s ', '-1s', '1s2']) refused(() => parseGoDuration('--health-interval', bad), /--health-interval/);
});

test('--health-cmd: a shell command, a JSON array (CMD form), or none', () => {
  assert.deepEqual(parseHealthCmd('curl -f http://localhost/ || exit 1'), ['CMD-SHELL', 'curl -f http://localhost/ || exit 1']);
  assert.deepEqual(parseHealthCmd('["CMD","pg_isready","-U","postgres"]'), ['CMD', 'pg_isready', '-U', 'postgres']);
  assert.deepEqual(parseHealthCmd('["pg_isready"]'), ['CMD', 'pg_isready']);
  assert.deepEqual(parseHealthCmd('["CMD-SHELL","test -f /ok"]'), ['CMD-SHELL', 'test -f /ok']);
  assert.equal(parseHealthCmd('none'), 'none');
  assert.equal(parseHealthCmd('["NONE"]'), 'none');
  refused(() => parseHealthCmd('[not json'), /not a JSON array/);
  refused(() => parseHealthCmd('["CMD"]'), /names no command/);
  refused(() => parseHealthCmd(' '), /empty/);
});

test('the flags as an override: none given, off, or some fields', () => {
  assert.equal(parseHealthFlags({}), undefined);
  assert.deepEqual(parseHealthFlags({ healthcheck: false }), { disable: true });
  assert.deepEqual(parseHealthFlags({ healthCmd: 'none' }), { disable: true });
  assert.deepEqual(parseHealthFlags({ healthCmd: 'true', healthInterval: 'disable' }), { disable: true });
  assert.deepEqual(parseHealthFlags({ healthCmd: 'test -f /ok', healthInterval: '2s', healthRetries: '1', healthTimeout: '5s', healthStartPeriod: '10s' }),
    { test: ['CMD-SHELL', 'test -f /ok'], intervalMs: 2000, retries: 1, timeoutMs: 5000, startPeriodMs: 10_000 });
  assert.deepEqual(parseHealthFlags({ healthInterval: '5s' }), { intervalMs: 5000 });
  refused(() => parseHealthFlags({ healthcheck: false, healthCmd: 'true' }), /--no-healthcheck was given with --health-\* flags/);
  refused(() => parseHealthFlags({ healthRetries: '0' }), /--health-retries/);
  refused(() => parseHealthFlags({ healthInterval: '0s' }), /longer than 0/);
});

test('the override goes over the image\'s HEALTHCHECK, field by field', () => {
  const image = healthcheckFrom({ Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: 2e9, Retries: 2 })!;
  assert.deepEqual(image, { test: ['CMD-SHELL', 'test -f /tmp/ok'], intervalMs: 2000, timeoutMs: 30_000, retries: 2, startPeriodMs: 0 });
  assert.equal(applyHealthOverride(image, undefined), image);
  assert.equal(applyHealthOverride(image, { disable: true }), undefined);
  assert.deepEqual(applyHealthOverride(image, { intervalMs: 500 }), { ...image, intervalMs: 500 });
  assert.deepEqual(applyHealthOverride(undefined, { test: ['CMD', 'true'] }), { test: ['CMD', 'true'], intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 });
  // Fields without a command, for an image without a HEALTHCHECK: nothing to run.
  assert.equal(applyHealthOverride(undefined, { intervalMs: 500 }), undefined);
  assert.equal(healthcheckFrom({ Test: ['NONE'] }), undefined);
});
