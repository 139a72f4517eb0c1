import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpOptionsFromFlags } from './cp-options.js';

test('cpOptionsFromFlags: which end is the VM, as podman reads NAME:PATH', () => {
  assert.deepEqual(cpOptionsFromFlags('web:/etc/x', 'out', {}), { to: 'host', name: 'web', containerPath: '/etc/x', hostPath: 'out', overwrite: false });
  assert.deepEqual(cpOptionsFromFlags('./a:b', 'web:/in', { archive: false, overwrite: true }), { to: 'container', name: 'web', containerPath: '/in', hostPath: './a:b', overwrite: true, archive: false });
  assert.deepEqual(cpOptionsFromFlags('-', 'web:/in', {}), { to: 'container', name: 'web', containerPath: '/in', hostPath: '-', overwrite: false, archive: true });
  assert.equal(cpOptionsFromFlags('web:/x', '-', {}).hostPath, '-');
  assert.equal(cpOptionsFromFlags('/abs:path', 'web:/x', {}).hostPath, '/abs:path');
});

test('cpOptionsFromFlags: refuses what names no VM, two VMs, no path, or a bad name', () => {
  assert.throws(() => cpOptionsFromFlags('a', 'b', {}), /neither "a" nor "b" names a VM/);
  assert.throws(() => cpOptionsFromFlags('a:/x', 'b:/y', {}), /from one VM to another/);
  assert.throws(() => cpOptionsFromFlags('web:', 'out', {}), /no path after "web:"/);
  assert.throws(() => cpOptionsFromFlags('bad name:/x', 'out', {}), /invalid VM name/);
  assert.throws(() => cpOptionsFromFlags('', 'web:/x', {}), /empty path/);
});
