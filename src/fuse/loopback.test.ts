/**
 * The whole volume stack (guest relay, FUSE mount, host server) on this host, without a
 * VM: real kernel FUSE, real file operations in child processes. Needs root.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, renameSync, statSync, writeFileSync, chmodSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLoopback, type Loopback } from './testing/loopback.js';
import { testRelayBinary } from './testing/relay-binary.js';
import { volprobe } from '../../test/volprobe.js';

async function rootOnly(t: TestContext): Promise<boolean> {
  const why = process.getuid?.() !== 0 ? 'needs root (FUSE mounts)' : !existsSync('/dev/fuse') ? 'needs /dev/fuse' : (await testRelayBinary()).why;
  if (why) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: ${why} ***\n`);
    t.skip(why);
  }
  return !why;
}

/** Runs a shell command in a child process (this process serves the mount). */
function sh(cmd: string, opts: { uid?: number; gid?: number } = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', cmd], { ...opts, maxBuffer: 64 << 20 }, (e, out, err) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err }));
  });
}

async function withVolumes(t: TestContext, vols: { readOnly?: boolean }[], fn: (lb: Loopback, hosts: string[]) => Promise<void>): Promise<void> {
  if (!(await rootOnly(t))) return;
  const hosts = vols.map(() => mkdtempSync(join(tmpdir(), 'fcvm-volhost-')));
  for (const h of hosts) chmodSync(h, 0o755);
  const lb = await startLoopback(vols.map((v, i) => ({ hostPath: hosts[i]!, readOnly: v.readOnly ?? false })));
  try {
    await fn(lb, hosts);
  } finally {
    await lb.close();
    for (const h of hosts) rmSync(h, { recursive: true, force: true });
  }
}

test('reads and writes both ways; names and links', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    writeFileSync(join(host!, 'from-host'), 'host data\n');
    let r = await sh(`cd ${mp} && cat from-host && echo guest > g && mkdir -p d/e && ln g hard && ln -s g soft && mv g d/e/moved && readlink soft && cat hard && rmdir d/e 2>&1; ls d/e`);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /host data\nguest\nguest\n.*Directory not empty|not empty/s);
    assert.equal(readFileSync(join(host!, 'd/e/moved'), 'utf8'), 'guest\n');
    assert.equal(statSync(join(host!, 'hard')).nlink, 2);
    // A host edit is seen within the attribute timeout (1 s).
    writeFileSync(join(host!, 'from-host'), 'edited on the host, longer\n');
    await new Promise((res) => setTimeout(res, 1100));
    r = await sh(`cat ${mp}/from-host`);
    assert.equal(r.out, 'edited on the host, longer\n');
  });
});

test('an access ACL set or removed in the guest shows in its mode bits at once, as cp -p and setfacl rely on', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    // system.posix_acl_access, version 2: user::rw- group::r-- other::r-- (what setfacl --set u::rw,g::r,o::r writes).
    const setAcl = (file: string) => `python3 -c 'import os,struct; os.setxattr("${file}", "system.posix_acl_access", struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, 0xffffffff) for t, p in ((1, 6), (4, 4), (0x20, 4))))'`;
    // stat -c %a asks statx for the mode alone, which the guest kernel answers from its cache.
    const r = await sh(`cd ${mp} && touch x && chmod 600 x && stat -c %a x && ${setAcl('x')} && stat -c %a x && chmod 640 x && stat -c %a x`);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, '600\n644\n640\n');
    assert.equal(statSync(join(host!, 'x')).mode & 0o777, 0o640);
  });
});

test('host changes reach the guest at once; the guest\'s own changes keep its cache', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    const asked = () => {
      const s = lb.server.stats();
      return (s.LOOKUP?.count ?? 0) + (s.GETATTR?.count ?? 0);
    };
    // The guest's own files: still cached after the old 1 s timeouts, no request goes up.
    let r = await sh(`cd ${mp} && mkdir d && echo one > d/f && echo two >> d/f && chmod 600 d/f && ln d/f d/g && mv d/g d/h && stat -c %s d/f`);
    assert.equal(r.code, 0, r.err);
    await new Promise((res) => setTimeout(res, 1500));
    const before = asked();
    r = await sh(`stat -c '%s %a %h' ${mp}/d/f ${mp}/d/h && ls ${mp}/d/nothing 2>/dev/null; stat -c %s ${mp}/d/f`);
    assert.equal(r.out, '8 600 2\n8 600 2\n8\n');
    assert.ok(asked() - before <= 1, `the guest asked the host ${asked() - before} times about names it made itself (only the new negative name may go up)`);

    // Host changes, each seen well within the 1 s an unwatched volume would take.
    const seen = async (cmd: string, want: string) => {
      const t0 = Date.now();
      for (;;) {
        const out = (await sh(cmd)).out;
        if (out === want) return Date.now() - t0;
        assert.ok(Date.now() - t0 < 800, `after 800 ms \`${cmd}\` still gives ${JSON.stringify(out)}, not ${JSON.stringify(want)}`);
      }
    };
    await sh(`stat ${mp}/d/later 2>/dev/null`); // a cached negative name
    writeFileSync(join(host!, 'd/f'), 'edited on the host, longer\n');
    const edit = await seen(`cat ${mp}/d/f`, 'edited on the host, longer\n');
    writeFileSync(join(host!, 'd/later'), 'new\n');
    const create = await seen(`cat ${mp}/d/later 2>&1`, 'new\n');
    chmodSync(join(host!, 'd/later'), 0o640);
    const mode = await seen(`stat -c %a ${mp}/d/later`, '640\n');
    writeFileSync(join(host!, 'd/tmp'), 'saved\n');
    renameSync(join(host!, 'd/tmp'), join(host!, 'd/later'));
    const save = await seen(`cat ${mp}/d/later`, 'saved\n');
    rmSync(join(host!, 'd/h'));
    const gone = await seen(`stat -c %h ${mp}/d/f; test -e ${mp}/d/h || echo gone`, '1\ngone\n');
    process.stderr.write(`host changes seen in the guest after: edit ${edit} ms, create ${create} ms, chmod ${mode} ms, atomic save ${save} ms, unlink ${gone} ms\n`);
  });
});

test('in a directory the guest made, the relay answers LOOKUPs of absent names; host changes there still show at once', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    const lookups = () => lb.server.stats().LOOKUP?.count ?? 0;
    let r = await sh(`mkdir ${mp}/d`);
    assert.equal(r.code, 0, r.err);
    const before = lookups();
    r = await sh(`cd ${mp}/d && for i in 1 2 3 4 5 6 7 8; do echo $i > f$i; done && mkdir sub && echo s > sub/x && mv f1 g1 && rm f2 && ln f3 h3 && ln -s f4 l4 && ls | sort | tr '\\n' ' ' && cat g1 h3 l4 sub/x | tr '\\n' ' '`);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'f3 f4 f5 f6 f7 f8 g1 h3 l4 sub 1 3 4 s ');
    assert.equal(lookups() - before, 0, 'no LOOKUP of a new name went to the host');
    // Names the guest removed or moved away are absent again; names it made are there.
    r = await sh(`cd ${mp}/d && test ! -e f1 && test ! -e f2 && test -e g1 && test -e sub/x && echo ok`);
    assert.equal(r.out, 'ok\n', r.err);
    // A host create in the directory: the relay forgets what it knew, the guest sees it.
    writeFileSync(join(host!, 'd/from-host'), 'h\n');
    const t0 = Date.now();
    while ((await sh(`cat ${mp}/d/from-host 2>/dev/null`)).out !== 'h\n') assert.ok(Date.now() - t0 < 800, 'a host create in a guest-made directory is not seen');
    // And then LOOKUPs there go to the host again.
    const again = lookups();
    await sh(`cat ${mp}/d/nothing-here 2>/dev/null`);
    assert.equal(lookups() - again, 1);
  });
});

test('git init && git commit inside a volume', async (t) => {
  if (!existsSync('/usr/bin/git')) return void t.skip('no git');
  await withVolumes(t, [{}], async (lb) => {
    const r = await sh(`cd ${lb.mountPoints[0]} && git init -q repo && cd repo && echo hi > f && git add f && git -c user.name=t -c user.email=t@e commit -qm one && git log --oneline | wc -l && git fsck 2>&1 && git status --short | wc -l`);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^1\n/);
  });
});

test('read-only volumes refuse changes with EROFS and leave the host file alone', async (t) => {
  await withVolumes(t, [{ readOnly: true }], async (lb, [host]) => {
    writeFileSync(join(host!, 'f'), 'keep');
    const r = await sh(`cd ${lb.mountPoints[0]} && cat f; echo x > f; echo x > new; mkdir d; rm f; touch f`);
    assert.match(r.err, /Read-only file system/);
    assert.doesNotMatch(r.err, /Input\/output/);
    assert.equal(readFileSync(join(host!, 'f'), 'utf8'), 'keep');
    assert.equal(existsSync(join(host!, 'new')), false);
  });
});

test('ownership: a guest caller\'s files belong to its uid and gid on the host (root server)', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    chmodSync(host!, 0o777);
    const r = await sh(`cd ${lb.mountPoints[0]} && umask 027 && echo a > by-user && mkdir dir-by-user && mkfifo fifo`, { uid: 1234, gid: 2345 });
    assert.equal(r.code, 0, r.err);
    for (const [name, mode] of [['by-user', 0o640], ['dir-by-user', 0o750], ['fifo', 0o640]] as const) {
      const st = statSync(join(host!, name));
      assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [1234, 2345, mode], name);
    }
    // Permission checks are the guest kernel's, on the host's owners and modes.
    const denied = await sh(`echo x > ${lb.mountPoints[0]}/by-user`, { uid: 4321, gid: 4321 });
    assert.match(denied.err, /Permission denied/);
  });
});

test('large files keep their SHA-256 both ways; parallel writers', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    let r = await sh(`head -c 67108864 /dev/urandom > ${mp}/big && sha256sum ${mp}/big`);
    assert.equal(r.code, 0, r.err);
    const sum = createHash('sha256').update(readFileSync(join(host!, 'big'))).digest('hex');
    assert.equal(r.out.split(' ')[0], sum);
    copyFileSync(join(host!, 'big'), join(host!, 'big2'));
    r = await sh(`sha256sum ${mp}/big2`);
    assert.equal(r.out.split(' ')[0], sum);
    // 8 writers to distinct files, and 8 to distinct 1 MiB ranges of one file.
    r = await sh(`cd ${mp} && for i in 0 1 2 3 4 5 6 7; do (head -c 4194304 /dev/zero | tr '\\0' "$i" > w$i) & (dd if=/dev/zero bs=1048576 count=1 2>/dev/null | tr '\\0' "$i" | dd of=shared bs=1048576 seek=$i conv=notrunc 2>/dev/null) & done; wait`);
    assert.equal(r.code, 0, r.err);
    const shared = readFileSync(join(host!, 'shared'));
    assert.equal(shared.length, 8 << 20);
    for (let i = 0; i < 8; i++) {
      assert.ok(readFileSync(join(host!, `w${i}`)).every((b) => b === 0x30 + i), `w${i}`);
      assert.ok(shared.subarray(i << 20, (i + 1) << 20).every((b) => b === 0x30 + i), `range ${i}`);
    }
  });
});

test('mmap + msync, rename flags, SEEK_DATA/HOLE, copy_file_range, xattrs, fallocate', async (t) => {
  const probe = volprobe();
  if (!probe.path) {
    process.stderr.write(`\n*** SKIPPED ${t.name}: ${probe.why} ***\n`);
    return void t.skip(probe.why);
  }
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    const p = probe.path!;
    writeFileSync(join(host!, 'm'), 'aaaaaaaaaa');
    writeFileSync(join(host!, 'x1'), '1');
    writeFileSync(join(host!, 'x2'), '2');
    symlinkSync('m', join(host!, 'sl'));
    // Run from the volume itself: execve opens it with the kernel's own flag bits.
    copyFileSync(p, join(host!, 'volprobe'));
    chmodSync(join(host!, 'volprobe'), 0o755);
    const r = await sh([
      `${mp}/volprobe mmapwrite ${mp}/m 3 MMAP`,
      `${p} rename2 ${mp}/x1 ${mp}/x2 noreplace`,
      `${p} rename2 ${mp}/x1 ${mp}/x2 exchange`,
      `${p} seek ${mp}/sparse`,
      `${p} cfr ${mp}/m ${mp}/copy`,
      `${p} xattr ${mp}/m`,
      `${p} falloc ${mp}/fa`,
      `${p} lxattr ${mp}/sl`,
    ].join('; '));
    const lines = r.out.trim().split('\n');
    assert.equal(readFileSync(join(host!, 'm'), 'utf8'), 'aaaMMAPaaa');
    assert.equal(lines[1], 'rename2 EEXIST');
    assert.equal(lines[2], 'ok');
    assert.equal(readFileSync(join(host!, 'x1'), 'utf8'), '2');
    assert.match(lines[3]!, /^ok data0=0 hole0=4096 data8k=1048576$/);
    assert.equal(lines[4], 'ok 10');
    assert.equal(readFileSync(join(host!, 'copy'), 'utf8'), 'aaaMMAPaaa');
    assert.equal(lines[5], 'ok val listed=1 cap=EPERM');
    assert.equal(lines[6], 'ok size=1048576');
    assert.equal(lines[7], 'lxattr list=0 get=ENODATA set=EPERM', 'a symlink: as the host\'s own file system answers');
  });
});

test('a dead host server answers EIO; the guest never hangs', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    writeFileSync(join(host!, 'f'), 'x');
    assert.equal((await sh(`cat ${lb.mountPoints[0]}/f`)).out, 'x');
    lb.killHost();
    const r = await sh(`cat ${lb.mountPoints[0]}/f; ls ${lb.mountPoints[0]}/nothing`);
    assert.match(r.err, /Input\/output error/);
  });
});

test('a clone\'s server takes over the tables, on another host directory, and the guest drops its caches', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    mkdirSync(join(host!, 'sub'));
    writeFileSync(join(host!, 'sub/f'), 'source');
    assert.equal((await sh(`cat ${mp}/sub/f`)).out, 'source');
    const tables = lb.server.snapshot();
    const other = mkdtempSync(join(tmpdir(), 'fcvm-volhost-'));
    try {
      mkdirSync(join(other, 'sub'));
      writeFileSync(join(other, 'sub/f'), 'clone!');
      await lb.replaceHost([{ index: 0, hostPath: other, readOnly: false }], tables);
      await new Promise((res) => setTimeout(res, 200));
      // Same size, within the attribute timeout: only the invalidation makes this right.
      assert.equal((await sh(`cat ${mp}/sub/f`)).out, 'clone!');
      assert.equal((await sh(`echo new > ${mp}/sub/g && cat ${other}/sub/g`)).out, 'new\n');
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

test('POSIX conformance suite (test/posix/conformance.ts) on a volume', async (t) => {
  await withVolumes(t, [{}], async (lb) => {
    const r = await sh(`${process.execPath} dist/test/posix/conformance.js ${lb.mountPoints[0]}/conf`);
    process.stderr.write(r.out.split('\n').filter((l) => l.startsWith('FAIL')).join('\n'));
    assert.match(r.out, / 0 failed\n$/, r.out + r.err);
  });
});

test('flock and POSIX locks are held on the host: guest and host processes exclude each other', async (t) => {
  if (!existsSync('/usr/bin/flock')) return void t.skip('no flock(1)');
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    writeFileSync(join(host!, 'f'), 'x');
    // flock: the guest holds it; the host cannot take it; then the host holds it and a
    // blocking guest flock waits for it.
    const holder = sh(`flock -x ${mp}/f -c 'echo held; sleep 1.5'`);
    await new Promise((res) => setTimeout(res, 700));
    assert.equal((await sh(`flock -n ${host}/f -c true`)).code, 1, 'the host took a flock the guest holds');
    await holder;
    const hostHolds = sh(`flock -x ${host}/f -c 'sleep 1'`);
    await new Promise((res) => setTimeout(res, 300));
    const t0 = Date.now();
    const waited = await sh(`flock -x ${mp}/f -c 'echo got it'`);
    assert.equal(waited.out, 'got it\n');
    assert.ok(Date.now() - t0 > 400, 'the guest flock did not wait');
    await hostHolds;
    // POSIX record locks, through python's fcntl.lockf (F_SETLK): one byte range each.
    if (!existsSync('/usr/bin/python3') && !existsSync('/root/.pyenv/shims/python3')) return;
    const py = (path: string, body: string) => `python3 -c 'import fcntl,os,time,sys
f=open("${path}","r+")
${body}'`;
    const { spawn } = await import('node:child_process');
    const holderProc = spawn('sh', ['-c', py(`${mp}/f`, 'fcntl.lockf(f, fcntl.LOCK_EX, 1, 0)\nprint("locked", flush=True)\nsys.stdin.read()')]);
    const guestLock = new Promise<{ out: string }>((res) => {
      let out = '';
      holderProc.stdout.on('data', (d) => (out += d));
      holderProc.on('exit', () => res({ out }));
    });
    // Until the guest holds it (python starts slowly on a busy machine).
    await new Promise((res) => holderProc.stdout.once('data', res));
    const conflict = await sh(py(`${host}/f`, 'try:\n  fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB, 1, 0); print("got")\nexcept OSError as e: print("busy")'));
    assert.equal(conflict.out, 'busy\n');
    const other = await sh(py(`${host}/f`, 'fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB, 1, 1); print("other range ok")'));
    assert.equal(other.out, 'other range ok\n');
    const guestSecond = await sh(py(`${mp}/f`, 'try:\n  fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB, 1, 0); print("got")\nexcept OSError as e: print("busy")'));
    assert.equal(guestSecond.out, 'busy\n');
    // The holder keeps its lock until its stdin closes (python starts slowly on a busy machine).
    holderProc.stdin.end();
    assert.equal((await guestLock).out, 'locked\n');
    // Its owner gone, the range is free.
    const after = await sh(py(`${host}/f`, 'fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB, 1, 0); print("free")'));
    assert.equal(after.out, 'free\n');
  });
});

test('a guest lock or open right after a host write reads the host\'s data, not its cached pages', async (t) => {
  if (!existsSync('/usr/bin/python3')) return void t.skip('no python3');
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    const file = join(host!, 'db');
    writeFileSync(file, 'v000\n');
    // A guest process that keeps the file open with its pages cached, as a database does:
    // on each line of input it locks, reads and unlocks, as SQLite does around a transaction.
    const { spawn } = await import('node:child_process');
    const reader = spawn('python3', ['-u', '-c', `import fcntl,os,sys
fd=os.open("${mp}/db", os.O_RDWR)
os.pread(fd, 5, 0)
print("ready")
for line in sys.stdin:
  fcntl.lockf(fd, fcntl.LOCK_EX)
  got=os.pread(fd, 5, 0).decode().strip()
  fcntl.lockf(fd, fcntl.LOCK_UN)
  print(got)`]);
    const lines: string[] = [];
    let buf = '';
    const waiters: (() => void)[] = [];
    reader.stdout.on('data', (d) => {
      buf += d;
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) lines.push(buf.slice(0, i));
      waiters.splice(0).forEach((w) => w());
    });
    const line = async () => {
      while (lines.length === 0) await new Promise<void>((r) => waiters.push(r));
      return lines.shift()!;
    };
    try {
      assert.equal(await line(), 'ready');
      // Each host write is followed at once by the guest's lock: host changes are read
      // every 50 ms otherwise, so without their being told before the lock's reply most
      // of these reads would return the page cached before the write.
      const stale: string[] = [];
      for (let i = 1; i <= 20; i++) {
        const want = `v${String(i).padStart(3, '0')}`;
        writeFileSync(file, `${want}\n`);
        reader.stdin.write('go\n');
        const got = await line();
        if (got !== want) stale.push(`${got} for ${want}`);
        // And a new open (cat) right after a host write reads it too (FOPEN_KEEP_CACHE).
        const opened = `o${String(i).padStart(3, '0')}`;
        writeFileSync(file, `${opened}\n`);
        const r = await sh(`cat ${mp}/db`);
        if (r.out !== `${opened}\n`) stale.push(`open gave ${JSON.stringify(r.out)} for ${opened}`);
      }
      assert.deepEqual(stale, [], 'the guest read stale data after a lock or an open');
    } finally {
      reader.stdin.end();
      reader.kill();
    }
  });
});

test('an open right after the host replaced a file (an atomic save) opens the new file; a reopen of a file the guest removed still works', async (t) => {
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    const file = join(host!, 'index.html');
    writeFileSync(file, 'v0\n');
    const stale: string[] = [];
    for (let i = 1; i <= 15; i++) {
      // The guest's cache knows the name (and its file) before each save.
      assert.equal((await sh(`cat ${mp}/index.html`)).out, `v${i - 1}\n`);
      writeFileSync(join(host!, '.tmp'), `v${i}\n`);
      renameSync(join(host!, '.tmp'), file);
      const r = await sh(`cat ${mp}/index.html`);
      if (r.out !== `v${i}\n`) stale.push(`${JSON.stringify(r.out + r.err)} for v${i}`);
    }
    assert.deepEqual(stale, [], 'the guest opened the file the host had replaced');
    // The guest's own unlink of a file it holds open: a reopen through /proc still opens it.
    const r = await sh(`cd ${mp} && echo kept > gone && exec 3<gone && rm gone && cat /proc/self/fd/3 && cat /proc/$$/fd/3`);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'kept\nkept\n');
  });
});

test('a guest that keeps more inodes than the descriptor limit: the oldest are closed and found again by path', async (t) => {
  if (!(await rootOnly(t))) return;
  const host = mkdtempSync(join(tmpdir(), 'fcvm-volhost-'));
  const { fdLimits } = await import('./volume-server.js');
  assert.deepEqual(fdLimits(1, 20000), { inodeFds: 9000, handles: 4500, lockOwners: 750 });
  const lb = await startLoopback([{ hostPath: host, readOnly: false }], undefined, { inodeFds: 16, handles: 64, lockOwners: 4 });
  try {
    const mp = lb.mountPoints[0]!;
    let r = await sh(`cd ${mp} && for d in a b c d; do mkdir -p $d/sub; for i in $(seq 30); do echo $d$i > $d/sub/f$i; done; done && cat a/sub/f1 d/sub/f30`);
    assert.equal(r.out, 'a1\nd30\n', r.err);
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    // Renamed by the guest while closed: found at the new path.
    r = await sh(`cd ${mp} && mv a renamed && cat renamed/sub/f1 renamed/sub/f2 && for d in renamed b c d; do cat $d/sub/f7; done && ls renamed/sub | wc -l`);
    assert.equal(r.out, 'a1\na2\na7\nb7\nc7\nd7\n30\n', r.err);
    assert.ok(fds() <= before + 8, `descriptors grew from ${before} to ${fds()}`);
  } finally {
    await lb.close();
    rmSync(host, { recursive: true, force: true });
  }
});

test('rootless: the server runs as an ordinary user; guest files are that user\'s, shown as root', async (t) => {
  if (!(await rootOnly(t))) return;
  const user = 'fcvm-it-user';
  if ((await sh(`id -u ${user} || useradd -m -s /bin/sh ${user}`)).code !== 0) return void t.skip('cannot create a user');
  const uid = Number((await sh(`id -u ${user}`)).out);
  const gid = Number((await sh(`id -g ${user}`)).out);
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-rootless-'));
  chmodSync(dir, 0o755);
  const host = join(dir, 'host');
  mkdirSync(host);
  writeFileSync(join(host, 'roots-file'), 'r');
  (await import('node:fs')).chownSync(host, uid, gid);
  const sock = join(dir, 's');
  const { spawn } = await import('node:child_process');
  const { connect } = await import('node:net');
  const { FuseRelay } = await import('../agent/fuse-relay.js');
  (await import('node:fs')).chownSync(dir, uid, gid);
  const srv = spawn(process.execPath, ['dist/src/fuse/testing/serve-socket.js', sock, host], { uid, gid, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((res) => srv.stdout!.once('data', res));
  const relay = new FuseRelay((await testRelayBinary()).path!, { kind: 'pipe' });
  const mp = join(dir, 'mnt');
  await relay.mount({ index: 0, mountPoint: mp, readOnly: false });
  const conn = connect(sock);
  conn.pipe(relay.pipe!).pipe(conn);
  try {
    const r = await sh(`cd ${mp} && echo g > by-guest && mkdir d && stat -c '%u:%g %n' by-guest d roots-file . && chown 1234 by-guest; chown 0:0 by-guest && echo chown-ok`);
    assert.equal(r.out, `0:0 by-guest\n0:0 d\n65534:65534 roots-file\n0:0 .\nchown-ok\n`, r.err);
    assert.match(r.err, /Operation not permitted/);
    for (const f of ['by-guest', 'd']) {
      const st = statSync(join(host, f));
      assert.deepEqual([st.uid, st.gid], [uid, gid], f);
    }
  } finally {
    await relay.close();
    srv.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a request in flight at the snapshot is sent again to the clone\'s server and completes there', async (t) => {
  if (!existsSync('/usr/bin/flock')) return void t.skip('no flock(1)');
  await withVolumes(t, [{}], async (lb, [host]) => {
    const mp = lb.mountPoints[0]!;
    writeFileSync(join(host!, 'f'), 'x');
    const hostHolds = sh(`flock -x ${host}/f -c 'sleep 2'`);
    await new Promise((res) => setTimeout(res, 300));
    // The guest waits for the lock: its SETLKW is in flight at the old server.
    const waiting = sh(`flock -x ${mp}/f -c 'echo got it'`);
    await new Promise((res) => setTimeout(res, 500));
    const tables = lb.server.snapshot();
    await lb.replaceHost([{ index: 0, hostPath: host!, readOnly: false }], tables);
    const r = await waiting;
    assert.equal(r.out, 'got it\n', r.err);
    await hostHolds;
  });
});
