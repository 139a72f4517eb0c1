import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endOptionsAtCommand, switchesWithEquals, type OptionShape } from './switch-args.js';

const shapes: OptionShape[] = [
  { long: '--read-only', takesValue: false, isSwitch: true },
  { long: '--tls-verify', takesValue: false, isSwitch: true },
  { long: '--name', takesValue: true, isSwitch: false },
  { short: '-e', long: '--env', takesValue: true, isSwitch: false },
  { short: '-i', long: '--interactive', takesValue: false, isSwitch: false },
  { short: '-t', long: '--tty', takesValue: false, isSwitch: false },
  { short: '-P', long: '--publish-all', takesValue: false, isSwitch: true },
];
const norm = (...a: string[]) => switchesWithEquals(a, shapes);

test('a bare switch before the image gets "=true", so the image stays the image', () => {
  assert.deepEqual(norm('--read-only', 'alpine'), ['--read-only=true', 'alpine']);
  assert.deepEqual(norm('--tls-verify', '--read-only=false', 'reg:5000/a'), ['--tls-verify=true', '--read-only=false', 'reg:5000/a']);
  assert.deepEqual(norm('--tls-verify=false', 'reg:5000/a'), ['--tls-verify=false', 'reg:5000/a']);
});

test('a short switch, alone or grouped, becomes its long form with "=true"', () => {
  assert.deepEqual(norm('-P', 'alpine'), ['--publish-all=true', 'alpine']);
  assert.deepEqual(norm('-itP', 'alpine'), ['-i', '-t', '--publish-all=true', 'alpine']);
  assert.deepEqual(norm('-Pie', 'X=1', 'alpine'), ['--publish-all=true', '-i', '-e', 'X=1', 'alpine'], 'a grouped -e still takes the next word');
  assert.deepEqual(norm('-PeX=1', 'alpine'), ['--publish-all=true', '-eX=1', 'alpine']);
  assert.deepEqual(norm('-eP', 'alpine'), ['-eP', 'alpine'], '"P" is the value of -e here');
});

test('-X=VALUE is VALUE, as in podman (pflag), not "=VALUE"', () => {
  assert.deepEqual(norm('-e=X=1', 'alpine'), ['-e', 'X=1', 'alpine']);
  assert.deepEqual(norm('-P=false', 'alpine'), ['--publish-all=false', 'alpine']);
  assert.deepEqual(norm('-e', '-e=not-a-flag', 'alpine'), ['-e', '-e=not-a-flag', 'alpine'], 'a value that looks like one');
});

test('values of other flags, and everything from the image on, are left alone', () => {
  assert.deepEqual(norm('--name', '--read-only', 'alpine'), ['--name', '--read-only', 'alpine'], 'a (strange) value of --name');
  assert.deepEqual(norm('-e', 'X=1', '--read-only', 'alpine'), ['-e', 'X=1', '--read-only=true', 'alpine']);
  assert.deepEqual(norm('-it', '--read-only', 'alpine'), ['-it', '--read-only=true', 'alpine']);
  assert.deepEqual(norm('-ie', 'X=1', '--read-only', 'a'), ['-ie', 'X=1', '--read-only=true', 'a'], 'a grouped -e takes the next word');
  assert.deepEqual(norm('-eX=1', '--read-only', 'a'), ['-eX=1', '--read-only=true', 'a']);
  assert.deepEqual(norm('alpine', '--read-only'), ['alpine', '--read-only'], 'the container\'s own arguments');
  assert.deepEqual(norm('--', '--read-only'), ['--', '--read-only']);
});

test('exec: options end where the command begins, so the command keeps its own', () => {
  const shapes = [
    { long: '--pid', takesValue: true, isSwitch: false }, { long: '--vm', takesValue: false, isSwitch: false },
    { short: '-i', long: '--interactive', takesValue: false, isSwitch: false }, { short: '-t', long: '--tty', takesValue: false, isSwitch: false },
    { short: '-e', long: '--env', takesValue: true, isSwitch: false }, { short: '-u', long: '--user', takesValue: true, isSwitch: false },
  ];
  const end = (s: string) => endOptionsAtCommand(s.split(' '), shapes, '--pid').join(' ');
  assert.equal(end('web ls -l /'), 'web -- ls -l /');
  assert.equal(end('-it -e A=1 -u 0 web sh -c x'), '-it -e A=1 -u 0 web -- sh -c x');
  assert.equal(end('web --vm -- hostname'), 'web --vm -- hostname');
  assert.equal(end('web --vm hostname -f'), 'web --vm -- hostname -f');
  assert.equal(end('--pid 42 ps --pid 1'), '--pid 42 -- ps --pid 1');
  assert.equal(end('--pid=42 ps'), '--pid=42 -- ps');
  assert.equal(end('-eA=1 web env'), '-eA=1 web -- env');
  assert.equal(end('web'), 'web');
});
