import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NOT_A_DIRECTORY, parseVolumes, type DirCheck } from './volumes.js';
import { isFcvmError } from '../errors/fcvm-error.js';

const dirs: DirCheck = (p) => (p.startsWith('/missing') ? { ok: false, why: 'it does not exist' } : p.startsWith('/file') ? { ok: false, why: NOT_A_DIRECTORY } : { ok: true, real: p });

const fails = (values: string[], re: RegExp) => {
  assert.throws(() => parseVolumes(values, dirs), (e) => isFcvmError(e) && e.code === 'INVALID_OPTION' && re.test(e.message));
};

test('comma-separated and repeated --map values', () => {
  assert.deepEqual(parseVolumes(['/a:/x:ro,/b:/y', '/c:/z/:rw'], dirs), [
    { host: '/a', guest: '/x', readOnly: true },
    { host: '/b', guest: '/y', readOnly: false },
    { host: '/c', guest: '/z', readOnly: false },
  ]);
});

test('each bad --map gets a one-line error naming it', () => {
  fails(['/missing:/x'], /does not exist/);
  fails(['/file:/x'], /not a directory/);
  // A single file (podman bind-mounts one; a config file is the common case): a hint that fits.
  assert.throws(() => parseVolumes(['/file.conf:/etc/app.conf:ro'], dirs), (e) => isFcvmError(e) && /a directory, not a single file/.test(e.hint ?? '') && !/Create the directory/.test(e.hint ?? ''));
  assert.throws(() => parseVolumes(['/missing:/x'], dirs), (e) => isFcvmError(e) && /Create the directory first/.test(e.hint ?? ''));
  fails(['rel:/x'], /not absolute/);
  fails(['/a:x'], /container path "x" is not absolute/);
  fails(['/a:/x,/b:/x/'], /mapped twice/);
  fails(['/a:/x:rox'], /unknown option "rox"/);
  fails(['/a'], /expected HOST:GUEST/);
  fails(['/a:/proc'], /over \/proc/);
  fails(['/a:/sys/fs'], /over \/sys/);
  fails(['/a:/dev'], /over \/dev/);
  fails(['/a:/'], /root/);
  fails(['/a:/etc/hosts'], /over \/etc\/hosts/);
});
