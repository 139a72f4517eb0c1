import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { assertNoLeftovers, ctrLines, fcvm, layout, vmsAvailable } from '../helpers.js';

const imageId = (ref: string) => execFileSync('podman', ['image', 'inspect', '--format', '{{.Id}}', ref], { encoding: 'utf8' }).trim();

/** A host image with an ID no earlier run has cached: busybox with a label of its own. */
function freshImage(t: { after: (fn: () => void) => void }): { ref: string; id: string } {
  const ref = `localhost/bb-fresh-${randomBytes(4).toString('hex')}`;
  execFileSync('podman', ['import', '--quiet', '--change', `LABEL fcvm.test=${ref}`, 'busybox-rootfs.tar', ref]);
  const id = imageId(ref);
  t.after(() => {
    spawnSync('podman', ['rmi', '--force', ref], { stdio: 'ignore' });
    for (const f of [`${id}.ext4`, `${id}.tar`]) rmSync(join(layout.imageCache, f), { force: true });
  });
  return { ref, id };
}

/**
 * A two-layer host image, loaded from a docker-archive made here: busybox, then a layer
 * that deletes /etc/passwd (a whiteout) and replaces /www's files (an opaque directory).
 */
function layeredImage(t: { after: (fn: () => void) => void }): { ref: string; id: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-it-layers-'));
  const ref = `localhost/bb-layers-${randomBytes(4).toString('hex')}`;
  try {
    mkdirSync(join(dir, 'top/etc'), { recursive: true });
    mkdirSync(join(dir, 'top/www'));
    writeFileSync(join(dir, 'top/etc/.wh.passwd'), '');
    writeFileSync(join(dir, 'top/www/.wh..wh..opq'), '');
    writeFileSync(join(dir, 'top/www/new.html'), 'new\n');
    mkdirSync(join(dir, 'a/top'), { recursive: true });
    mkdirSync(join(dir, 'a/base'));
    copyFileSync('busybox-rootfs.tar', join(dir, 'a/base/layer.tar'));
    execFileSync('tar', ['-C', join(dir, 'top'), '-cf', join(dir, 'a/top/layer.tar'), '.']);
    const sha = (f: string) => createHash('sha256').update(readFileSync(join(dir, 'a', f))).digest('hex');
    const config = JSON.stringify({
      architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'], Labels: { 'fcvm.test': ref } },
      rootfs: { type: 'layers', diff_ids: [`sha256:${sha('base/layer.tar')}`, `sha256:${sha('top/layer.tar')}`] },
    });
    writeFileSync(join(dir, 'a/config.json'), config);
    writeFileSync(join(dir, 'a/manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: [`${ref}:latest`], Layers: ['base/layer.tar', 'top/layer.tar'] }]));
    execFileSync('tar', ['-C', join(dir, 'a'), '-cf', join(dir, 'image.tar'), '.']);
    execFileSync('podman', ['load', '--quiet', '--input', join(dir, 'image.tar')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const id = imageId(ref);
  t.after(() => {
    spawnSync('podman', ['rmi', '--force', ref], { stdio: 'ignore' });
    for (const f of [`${id}.ext4`, `${id}.tar`]) rmSync(join(layout.imageCache, f), { force: true });
  });
  return { ref, id };
}

// What the container's root is made of: its overlay's lower layers.
const LOWER = `sed -n 's/.*lowerdir=\\([^,]*\\).*/\\1/p' /proc/mounts | head -n 1`;

test('a host image runs from a read-only image store disk: nothing is loaded in the guest', async (t) => {
  if (!vmsAvailable(t)) return;
  const { ref, id } = layeredImage(t);
  // The layers as podman stacks them (a whiteout, an opaque directory); the container
  // deletes a file of the image and writes one of its own.
  const r = await fcvm(['podman', 'run', '--no-snapshot', ref, '--', 'sh', '-c',
    `${LOWER}; test -e /etc/passwd || echo no-passwd; ls /www; rm /bin/cat && test ! -e /bin/cat && echo removed; echo new > /new && read l < /new && echo $l; ls /bin/busybox`]);
  assert.equal(r.exitCode, 0, r.stderr);
  const out = ctrLines(r, 'out');
  assert.match(out[0] ?? '', /^\/var\/lib\/fcvm-images\/overlay\/l\/[A-Z0-9]+:\/var\/lib\/fcvm-images\/overlay\/l\//, `the root's two lower layers are in the store: ${out[0]}`);
  assert.deepEqual(out.slice(1), ['no-passwd', 'new.html', 'removed', 'new', '/bin/busybox']);
  assert.ok(existsSync(join(layout.imageCache, `${id}.ext4`)), 'the store is cached by image ID');
  assert.ok(!existsSync(join(layout.imageCache, `${id}.tar`)), 'no archive was made');
  assert.deepEqual(readdirSync(layout.imageCache).filter((f) => f.includes('.partial')), [], 'no half-built store left');
  assert.deepEqual(readdirSync('/tmp').filter((f) => f.startsWith('.fcvm-store.')), [], 'no store run root left');
  assertNoLeftovers();
});

test('where no store can be built, the guest loads the image from its archive, and says so', async (t) => {
  if (!vmsAvailable(t)) return;
  const { ref, id } = freshImage(t);
  // A host whose mkfs.ext4 fails.
  const shim = mkdtempSync(join(tmpdir(), 'fcvm-it-shim-'));
  t.after(() => rmSync(shim, { recursive: true, force: true }));
  writeFileSync(join(shim, 'mkfs.ext4'), '#!/bin/sh\necho "mkfs.ext4: Operation not supported while populating file system" >&2\nexit 1\n');
  chmodSync(join(shim, 'mkfs.ext4'), 0o755);
  const r = await fcvm(['podman', 'run', '--no-snapshot', ref, '--', 'sh', '-c', `${LOWER}; echo ran`], { env: { PATH: `${shim}:${process.env.PATH}` } });
  assert.equal(r.exitCode, 0, r.stderr);
  const warn = r.stderr.split('\n').filter((l) => l.startsWith('fcvm: cannot build an image store'));
  assert.equal(warn.length, 1, r.stderr);
  assert.match(warn[0]!, new RegExp(`${id.slice(0, 12)} \\(.*Operation not supported while populating file system\\); the guest loads the image from its archive instead`));
  const out = ctrLines(r, 'out');
  assert.doesNotMatch(out[0] ?? '', /fcvm-images/, 'the image was loaded into the guest storage');
  assert.equal(out[1], 'ran');
  assert.ok(existsSync(join(layout.imageCache, `${id}.tar`)));
  assert.ok(!existsSync(join(layout.imageCache, `${id}.ext4`)));
  assert.deepEqual(readdirSync(layout.imageCache).filter((f) => f.includes('.partial')), [], 'the failed build left nothing');
  assertNoLeftovers();
});

test('killed while it builds a store, fcvm leaves nothing after the next command, and the next run builds it', async (t) => {
  if (!vmsAvailable(t)) return;
  const { ref, id } = freshImage(t);
  const killed = await fcvm(['podman', 'run', '--no-snapshot', ref, '--', 'true'], { env: { FCVM_FAILPOINT: 'image-store:loaded:kill' } });
  assert.match(killed.stderr, /failpoint image-store:loaded: SIGKILL/);
  assert.notEqual(killed.exitCode, 0);
  assert.ok(readdirSync(layout.imageCache).some((f) => f.startsWith(`.${id}.store.`)), 'the kill left a half-built store');
  const ls = await fcvm(['ls']);
  assert.equal(ls.exitCode, 0, ls.stderr);
  assert.deepEqual(readdirSync(layout.imageCache).filter((f) => f.includes(id)), [], 'the next command removed it');
  assert.deepEqual(readdirSync('/tmp').filter((f) => f.startsWith('.fcvm-store.')), [], 'and its run root');
  const r = await fcvm(['podman', 'run', '--no-snapshot', ref, '--', 'sh', '-c', LOWER]);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(ctrLines(r, 'out')[0] ?? '', /^\/var\/lib\/fcvm-images\//);
  assertNoLeftovers();
});

test('the image cache keeps no store of an image the host no longer has', async (t) => {
  if (!vmsAvailable(t)) return;
  const gone = freshImage(t);
  assert.equal((await fcvm(['podman', 'run', '--no-snapshot', gone.ref, '--', 'true'])).exitCode, 0);
  assert.ok(existsSync(join(layout.imageCache, `${gone.id}.ext4`)));
  execFileSync('podman', ['rmi', '--force', gone.ref], { stdio: 'ignore' });
  // The next store built prunes the cache.
  const next = freshImage(t);
  const r = await fcvm(['podman', 'run', '--no-snapshot', next.ref, '--', 'true']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.ok(existsSync(join(layout.imageCache, `${next.id}.ext4`)));
  assert.ok(!existsSync(join(layout.imageCache, `${gone.id}.ext4`)), 'the removed image\'s store went');
  assertNoLeftovers();
});
