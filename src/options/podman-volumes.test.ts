import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mountFlagSpec, volumeFlagSpec } from './podman-volumes.js';
import { checkVolumes, mapSpecs, type DirCheck } from './volumes.js';
import { isFcvmError } from '../errors/fcvm-error.js';

const dirs: DirCheck = (p) => (p.startsWith('/missing') ? { ok: false, why: 'it does not exist' } : { ok: true, real: p });
const invalid = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (e) => isFcvmError(e) && e.code === 'INVALID_OPTION' && re.test(e.message) && !e.message.includes('\n'));

test('-v as podman spells it: HOST:CTR[:ro|rw], relative host paths from the current directory, z/Z/rbind change nothing', () => {
  const v = (s: string) => { const { host, guest, readOnly } = volumeFlagSpec(s, '/home/u'); return { host, guest, readOnly }; };
  assert.deepEqual(v('/srv/data:/data:ro'), { host: '/srv/data', guest: '/data', readOnly: true });
  assert.deepEqual(v('/srv/data:/data'), { host: '/srv/data', guest: '/data', readOnly: false });
  assert.deepEqual(v('./src:/work:rw,Z'), { host: '/home/u/src', guest: '/work', readOnly: false });
  assert.deepEqual(v('..:/up:z,ro,rbind'), { host: '/home', guest: '/up', readOnly: true });
  // A comma is part of podman's options, not a list of volumes as in --map.
  invalid(() => volumeFlagSpec('/a:/x,/b:/y'), /--volume.*not supported/);
});

test('-v refuses what fcvm has no engine for, each in one line that names it', () => {
  invalid(() => volumeFlagSpec('/data'), /--volume "\/data": an anonymous volume/);
  invalid(() => volumeFlagSpec('mydata:/data'), /"mydata" would be a named volume/);
  invalid(() => volumeFlagSpec(':/data'), /host directory is empty/);
  invalid(() => volumeFlagSpec('/a:/x:ro,rw'), /both ro and rw/);
  invalid(() => volumeFlagSpec('/a:/x:O'), /option "O" is not supported/);
  invalid(() => volumeFlagSpec('/a:/x:noexec'), /option "noexec"/);
  invalid(() => volumeFlagSpec('/a:/x:ro:z'), /expected HOST-DIR:CONTAINER-DIR/);
});

test('--mount type=bind with podman\'s key spellings', () => {
  const m = (s: string) => { const { host, guest, readOnly } = mountFlagSpec(s, '/home/u'); return { host, guest, readOnly }; };
  assert.deepEqual(m('type=bind,source=/srv,target=/data,readonly'), { host: '/srv', guest: '/data', readOnly: true });
  assert.deepEqual(m('type=bind,src=./x,dst=/x,ro=false'), { host: '/home/u/x', guest: '/x', readOnly: false });
  assert.deepEqual(m('type=bind,src=/a,destination=/b,relabel=private'), { host: '/a', guest: '/b', readOnly: false });
  invalid(() => mountFlagSpec('type=volume,src=v,dst=/v'), /type=volume is not supported/);
  invalid(() => mountFlagSpec('type=tmpfs,dst=/t'), /type=tmpfs/);
  assert.throws(() => mountFlagSpec('type=tmpfs,dst=/t'), (e: Error & { hint?: string }) => e.hint === 'Use --tmpfs /t, which makes the same tmpfs');
  invalid(() => mountFlagSpec('src=/a,dst=/b'), /no type= given/);
  invalid(() => mountFlagSpec('type=bind,dst=/b'), /no source=/);
  invalid(() => mountFlagSpec('type=bind,src=/a'), /no target=/);
  invalid(() => mountFlagSpec('type=bind,src=/a,dst=/b,readonly=maybe'), /readonly=maybe is not true or false/);
  invalid(() => mountFlagSpec('type=bind,src=/a,dst=/b,bind-propagation=shared'), /"bind-propagation" is not supported/);
});

test('--map, -v and --mount are checked together, each error naming its own flag', () => {
  const specs = [...mapSpecs(['/a:/x']), volumeFlagSpec('/b:/y:ro'), mountFlagSpec('type=bind,src=/c,dst=/z')];
  assert.deepEqual(checkVolumes(specs, dirs), [
    { host: '/a', guest: '/x', readOnly: false },
    { host: '/b', guest: '/y', readOnly: true },
    { host: '/c', guest: '/z', readOnly: false },
  ]);
  invalid(() => checkVolumes([...mapSpecs(['/a:/x']), volumeFlagSpec('/b:/x/')], dirs), /--volume "\/b:\/x\/": container path \/x is mapped twice/);
  invalid(() => checkVolumes([volumeFlagSpec('/missing:/x')], dirs), /--volume.*does not exist/);
  invalid(() => checkVolumes([mountFlagSpec('type=bind,src=/a,dst=/proc/x')], dirs), /--mount.*over \/proc/);
  invalid(() => checkVolumes([volumeFlagSpec('/a:data')], dirs), /--volume.*container path "data" is not absolute/);
});
