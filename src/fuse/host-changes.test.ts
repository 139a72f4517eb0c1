import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsCalls, type FsCalls } from '../os/fs-calls.js';
import { HostChanges, type HostChange } from './host-changes.js';
import { ownersForProcess } from './owners.js';
import { Passthrough } from './passthrough.js';

const name = (s: string) => Buffer.from(`${s}\0`);

async function setup(os?: FsCalls) {
  const root = mkdtempSync(join(tmpdir(), 'fcvm-hostchg-'));
  mkdirSync(join(root, 'd'));
  writeFileSync(join(root, 'd/f'), 'x');
  const calls = os ?? (await fsCalls());
  const warnings: string[] = [];
  const changes = new HostChanges(calls, (m) => warnings.push(m));
  const fs = new Passthrough(calls, { readOnly: false, owners: ownersForProcess() });
  fs.openRoot(root);
  const seen: HostChange[] = [];
  fs.watchChanges(changes.forVolume(0, { child: (d, n) => fs.knownChild(d, n), changed: (c) => seen.push(c) }));
  const done = () => {
    changes.close();
    fs.close();
    rmSync(root, { recursive: true, force: true });
  };
  return { root, fs, changes, seen, warnings, done };
}

test('host changes are reported by name and inode; the server\'s own are not', async () => {
  const { root, fs, changes, seen, done } = await setup();
  try {
    const d = fs.lookup(1n, name('d')).inode.nodeid;
    const f = fs.lookup(d, name('f')).inode.nodeid;
    // The server's own changes (as the guest's requests make them).
    const h = fs.create(d, name('g'), 1, 0o644, { uid: process.getuid!(), gid: process.getgid!() });
    await fs.write(h.handle.fh, 0, Buffer.from('guest'));
    fs.setattr(f, { valid: 1, fh: 0n, size: 0, atime: { sec: 0, nsec: 0 }, mtime: { sec: 0, nsec: 0 }, mode: 0o600, uid: 0, gid: 0 });
    fs.rename(d, name('g'), 1n, name('moved'), 0);
    fs.unlink(1n, name('moved'), false);
    changes.drain();
    assert.deepEqual(seen, []);
    // The host's.
    writeFileSync(join(root, 'd/f'), 'host edit');
    writeFileSync(join(root, 'd/new'), 'n');
    changes.drain();
    const kinds = (seen as HostChange[]).map((c) => (c.kind === 'entry' ? `entry ${c.dir} ${c.name.toString('latin1', 0, c.name.length - 1)}` : c.kind === 'inode' ? `inode ${c.nodeid} ${c.data}` : 'all'));
    assert.ok(kinds.includes(`inode ${f} true`), kinds.join(', '));
    assert.ok(kinds.includes(`entry ${d} new`), kinds.join(', '));
  } finally {
    done();
  }
});

test('when a watch cannot be added, the volume says so once and stops claiming it watches', async () => {
  const real = await fsCalls();
  const os: FsCalls = { ...real, inotifyAddWatch: (fd, p, m) => (p.toString().includes('/proc/self/fd/') && watches++ > 0 ? -28 : real.inotifyAddWatch(fd, p, m)) };
  let watches = 0;
  const { fs, warnings, done } = await setup(os);
  try {
    assert.equal(fs.watching, true);
    fs.lookup(1n, name('d'));
    assert.equal(fs.watching, false);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /inotify_add_watch: ENOSPC \(raise fs.inotify.max_user_watches\).*within 1 s/);
    fs.lookup(1n, name('d'));
    assert.equal(warnings.length, 1);
  } finally {
    done();
  }
});
