import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ResultPromise } from 'execa';
import { assertNoLeftovers, fcvm, spawnFcvm, vmsUnavailableReason, waitFor } from '../helpers.js';
import { volprobe } from '../volprobe.js';

const NAME = 'it-vol';
const TAG = 'it-vol-snap';
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
/** FUSE mounts of fcvm's type on the host, but for the loopback unit tests' own (src/fuse/testing, in fcvm-vol-* temp dirs). */
const hostMounts = () => readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes('fuse.fcvm') && !/ \/tmp\/fcvm-vol-\w+\//.test(l));

describe('--map validation (nothing boots)', () => {
  const bad: [string[], RegExp][] = [
    [['--map', '/nonexistent-fcvm:/x'], /invalid --map "\/nonexistent-fcvm:\/x": host path \/nonexistent-fcvm: it does not exist/],
    [['--map', '/etc/hostname:/x'], /it is not a directory/],
    [['--map', '/tmp:x'], /container path "x" is not absolute/],
    [['--map', '/tmp:/x,/var:/x'], /container path \/x is mapped twice/],
    [['--map', '/tmp:/x:rwx'], /unknown option "rwx"/],
    [['--map', '/tmp:/proc/x'], /over \/proc, which the container needs/],
    [['--map', '/tmp:/dev'], /over \/dev/],
    [['--map', '/tmp:/sys'], /over \/sys/],
  ];
  for (const [args, re] of bad) {
    test(`rejects ${args[1]}`, async () => {
      const r = await fcvm(['podman', 'run', '--name', 'it-vol-bad', ...args, 'localhost/bb', '--', 'true']);
      assert.equal(r.exitCode, 125);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n')[0]!.startsWith('Error:') || r.stderr.includes('invalid --map'), true);
    });
  }
});

describe('volumes in a real VM', { concurrency: false }, () => {
  let vm: ResultPromise | undefined;
  let skip = false;
  const root = mkdtempSync(join(tmpdir(), 'fcvm-it-vol-'));
  const A = join(root, 'a');
  const B = join(root, 'b');
  const C = join(root, 'c');
  const exec = (cmd: string, opts: string[] = []) => fcvm(['exec', NAME, ...opts, '--', 'sh', '-c', cmd], { timeoutMs: 600_000 });

  before(async () => {
    const why = vmsUnavailableReason();
    const probe = volprobe();
    if (why || !probe.path) {
      process.stderr.write(`\n*** SKIPPED volumes in a real VM: ${why ?? probe.why} ***\n`);
      return void (skip = true);
    }
    for (const d of [A, B, C]) mkdirSync(d, { mode: 0o755 });
    chmodSync(root, 0o755);
    chmodSync(A, 0o777);
    copyFileSync(probe.path, join(A, 'volprobe'));
    chmodSync(join(A, 'volprobe'), 0o755);
    // .mjs: the guest's Node must load it as an ES module.
    copyFileSync(resolve('dist/test/posix/conformance.js'), join(A, 'conformance.mjs'));
    writeFileSync(join(A, 'from-host'), 'host data\n');
    writeFileSync(join(B, 'keep'), 'read-only data\n');
    writeFileSync(join(root, 'outside'), 'outside the root\n');
    symlinkSync('/etc/shadow', join(A, 'abs-shadow'));
    symlinkSync('../../../../../../etc/passwd', join(A, 'rel-passwd'));
    symlinkSync('/', join(A, 'slash'));
    await fcvm(['snapshots', 'delete', TAG]);
    vm = spawnFcvm(['podman', 'run', '--name', NAME, '--network', 'none', '--map', `${A}:/data,${B}:/ro:ro`, '--map', `${C}:/c`, 'localhost/bb-git', '--', 'sleep', '3600']);
    await waitFor(async () => (await exec('true')).exitCode === 0 || vm!.exitCode !== null, 240_000, 'the container');
    if (vm.exitCode !== null) assert.fail(`the VM exited: ${(await vm).all}`);
  });

  after(async () => {
    if (skip) return;
    vm?.kill('SIGKILL');
    await vm;
    await fcvm(['snapshots', 'delete', TAG]);
    await fcvm(['ls']);
    rmSync(root, { recursive: true, force: true });
  });

  test('reads and writes both ways, on volumes given comma-separated and repeated', async (t) => {
    if (skip) return t.skip();
    const r = await exec('cat /data/from-host /ro/keep && echo guest-a > /data/g && echo guest-c > /c/g && ls /data /c');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^host data\nread-only data\n/);
    assert.equal(readFileSync(join(A, 'g'), 'utf8'), 'guest-a\n');
    assert.equal(readFileSync(join(C, 'g'), 'utf8'), 'guest-c\n');
  });

  test(':ro is refused with EROFS and the host file stays', async (t) => {
    if (skip) return t.skip();
    const r = await exec('echo x > /ro/keep; echo x > /ro/new; rm /ro/keep; mkdir /ro/d; true');
    assert.match(r.stderr, /Read-only file system/);
    assert.equal(readFileSync(join(B, 'keep'), 'utf8'), 'read-only data\n');
    assert.equal(existsSync(join(B, 'new')), false);
  });

  test('new files belong to the guest caller on the host, with its mode', async (t) => {
    if (skip) return t.skip();
    const r = await exec('umask 027; echo u > /data/owned; mkdir /data/owned-dir', ['--user', '1234:2345']);
    assert.equal(r.exitCode, 0, r.stderr);
    const f = statSync(join(A, 'owned'));
    const d = statSync(join(A, 'owned-dir'));
    assert.deepEqual([f.uid, f.gid, f.mode & 0o777], [1234, 2345, 0o640]);
    assert.deepEqual([d.uid, d.gid, d.mode & 0o777], [1234, 2345, 0o750]);
    const root = await exec('echo r > /data/by-root && stat -c "%u:%g %a" /data/by-root /data/owned');
    assert.equal(root.stdout, '0:0 644\n1234:2345 640\n');
    assert.equal(statSync(join(A, 'by-root')).uid, 0);
  });

  test('a host edit is seen in the guest as it happens (host changes are watched)', async (t) => {
    if (skip) return t.skip();
    assert.equal((await exec('cat /data/from-host')).stdout, 'host data\n');
    // The guest reads in a loop from before the edit; it stops when it sees the edit.
    const watching = exec('while [ "$(cat /data/from-host)" != "edited on the host" ]; do [ -e /data/reading ] || touch /data/reading; done; echo seen');
    await waitFor(async () => existsSync(join(A, 'reading')), 30_000, 'the guest to read');
    writeFileSync(join(A, 'from-host'), 'edited on the host\n');
    const t0 = Date.now();
    const r = await watching;
    const ms = Date.now() - t0;
    assert.equal(r.stdout, 'seen\n', r.stderr);
    process.stderr.write(`host edit seen in the guest ${ms} ms after it was made (incl. the exec's reply)\n`);
    assert.ok(ms < 5_000, `the guest saw a host edit only after ${ms} ms`);
  });

  test('rename, hard link, symlink, mkdir, rmdir, and git init && git commit', async (t) => {
    if (skip) return t.skip();
    const r = await exec([
      'cd /data && mkdir -p x/y && echo 1 > x/f && mv x/f x/y/f2 && ln x/y/f2 hard && ln -s x/y/f2 soft && cat soft hard',
      'rmdir x/y 2>&1 | grep -q "not empty" && rm x/y/f2 && rmdir x/y && rmdir x',
      'git init -q repo && cd repo && echo hello > README && git add README && git -c user.name=t -c user.email=t@e commit -qm first && git log --oneline | wc -l && git fsck >/dev/null 2>&1 && echo fsck-ok',
    ].join(' && '));
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, '1\n1\n1\nfsck-ok\n');
    assert.equal(statSync(join(A, 'hard')).nlink, 1);
    assert.ok(existsSync(join(A, 'repo/.git/HEAD')));
    assert.equal(existsSync(join(A, 'x')), false);
  });

  test('256 MiB written in the guest and read on the host, and the reverse, with equal SHA-256', async (t) => {
    if (skip) return t.skip();
    // Random data from the host (the guest's own urandom is slow under emulation): the
    // guest reads it into its disk, checks it, and writes it back as a new file.
    writeFileSync(join(A, 'big-h'), randomBytes(256 << 20));
    const r = await exec('dd if=/data/big-h of=/big-copy bs=1M 2>/dev/null && sha256sum /big-copy && dd if=/big-copy of=/data/big-g bs=1M conv=fsync 2>/dev/null && rm /big-copy');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.split(' ')[0], sha(join(A, 'big-h')));
    assert.equal(sha(join(A, 'big-g')), sha(join(A, 'big-h')));
    rmSync(join(A, 'big-g'));
    rmSync(join(A, 'big-h'));
  });

  test('a write through mmap is on the host after msync', async (t) => {
    if (skip) return t.skip();
    writeFileSync(join(A, 'mm'), 'aaaaaaaaaa');
    const r = await exec('/data/volprobe mmapwrite /data/mm 2 MMAP');
    assert.equal(r.stdout, 'ok\n', r.stderr);
    assert.equal(readFileSync(join(A, 'mm'), 'utf8'), 'aaMMAPaaaa');
  });

  test('8 parallel writers to distinct files and to distinct ranges of one file', async (t) => {
    if (skip) return t.skip();
    const r = await exec('cd /data && for i in 0 1 2 3 4 5 6 7; do ./volprobe pwrite w$i 0 4194304 $i >/dev/null & ./volprobe pwrite shared $((i*1048576)) 1048576 $i >/dev/null & done; wait');
    assert.equal(r.exitCode, 0, r.stderr);
    const shared = readFileSync(join(A, 'shared'));
    assert.equal(shared.length, 8 << 20);
    for (let i = 0; i < 8; i++) {
      assert.ok(readFileSync(join(A, `w${i}`)).every((b) => b === 0x30 + i), `w${i}`);
      assert.ok(shared.subarray(i << 20, (i + 1) << 20).every((b) => b === 0x30 + i), `range ${i}`);
    }
  });

  test('escape attempts cannot read or write outside the root', async (t) => {
    if (skip) return t.skip();
    const shadow = sha('/etc/shadow');
    const passwd = readFileSync('/etc/passwd', 'utf8');
    const r = await exec([
      'cat /data/abs-shadow; cat /data/rel-passwd; ls /data/slash/; cat /data/../../../outside',
      'echo pwned > /data/abs-shadow; echo pwned >> /data/rel-passwd; ln /data/slash/etc/passwd /data/hl; echo pwned > /data/slash/outside; true',
    ].join('; '));
    // Symlinks resolve in the guest, to the guest's files: never the host's.
    assert.doesNotMatch(r.stdout, /outside the root/);
    assert.ok(!r.stdout.includes(passwd.split('\n')[0]!), 'the host\'s /etc/passwd was read');
    assert.equal(sha('/etc/shadow'), shadow);
    assert.equal(readFileSync('/etc/passwd', 'utf8'), passwd);
    assert.equal(readFileSync(join(root, 'outside'), 'utf8'), 'outside the root\n');
    assert.equal(existsSync('/outside'), false);
  });

  test('fcvm exec --vm sees the volume at /run/fcvm/volumes/N; the POSIX suite passes there', async (t) => {
    if (skip) return t.skip();
    const r = await fcvm(['exec', NAME, '--vm', '--', 'node', '/run/fcvm/volumes/0/conformance.mjs', '/run/fcvm/volumes/0/conf'], { timeoutMs: 600_000 });
    process.stderr.write(r.stdout.split('\n').filter((l) => l.startsWith('FAIL') || /passed/.test(l)).join('\n') + '\n');
    assert.match(r.stdout, / 0 failed\n$/, r.stdout + r.stderr);
    rmSync(join(A, 'conf'), { recursive: true, force: true });
  });

  test('a clone maps a container path to its own host directory', async (t) => {
    if (skip) return t.skip();
    const D = join(root, 'd');
    mkdirSync(D, { mode: 0o755 });
    writeFileSync(join(D, 'from-host'), 'the clone\'s own\n');
    let r = await fcvm(['snapshot', 'create', NAME, '--tag', TAG]);
    assert.equal(r.exitCode, 0, r.stderr);
    r = await fcvm(['snapshot', 'run', '--snapshot', TAG, '--name', 'it-vol-clone', '--network', 'none', '--map', `${D}:/data`, '--exec', 'sh -c "cat /data/from-host /ro/keep; echo c > /data/written-by-clone"'], { timeoutMs: 600_000 });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^the clone's own\nread-only data\n/);
    assert.equal(readFileSync(join(D, 'written-by-clone'), 'utf8'), 'c\n');
    assert.equal(existsSync(join(A, 'written-by-clone')), false);
    assert.doesNotMatch(r.stderr, /\(\/data\)/, 'a remapped volume is the clone\'s own');
    assert.match(r.stderr, /^fcvm: warning: clone "it-vol-clone" writes to .*\/c \(\/c\), as running VM "it-vol" does/m, 'the volume it kept is shared');
    // Kept, the source's read-write directory is shared with the running source: said in one line.
    r = await fcvm(['snapshot', 'run', '--snapshot', TAG, '--name', 'it-vol-shared', '--network', 'none', '--exec', 'true'], { timeoutMs: 600_000 });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^fcvm: warning: clone "it-vol-shared" writes to ${A} \\(/data\\), as running VM "${NAME}" does; give it a directory of its own with --map COPY:/data, or :ro$`, 'm'), r.stderr);
    assert.doesNotMatch(r.stderr, /\/ro\)/, 'a read-only volume is no warning');
    // The source goes on with its own mapping.
    assert.equal((await exec('cat /data/from-host')).stdout, 'edited on the host\n');
    r = await fcvm(['snapshot', 'run', '--snapshot', TAG, '--name', 'it-vol-clone2', '--map', `${D}:/elsewhere`, '--exec', 'true']);
    assert.equal(r.exitCode, 125);
    assert.match(r.stderr, /has no volume at \/elsewhere/);
  });

  test('SIGKILL of the supervisor mid-write leaves the host directory consistent and nothing behind', async (t) => {
    if (skip) return t.skip();
    const writer = exec('dd if=/dev/zero of=/data/killed bs=1048576 count=4000 2>&1');
    await waitFor(() => existsSync(join(A, 'killed')) && statSync(join(A, 'killed')).size > 8 << 20, 120_000, 'the write to start');
    vm!.kill('SIGKILL');
    await vm;
    await writer;
    const size = statSync(join(A, 'killed')).size;
    assert.ok(size > 0 && size < 4000 * 2 ** 20, `size ${size}`);
    assert.deepEqual(hostMounts(), [], 'nothing mounted on the host');
    readFileSync(join(A, 'killed'));
    assert.equal((await fcvm(['ls'])).exitCode, 0);
    assertNoLeftovers();
  });
});
