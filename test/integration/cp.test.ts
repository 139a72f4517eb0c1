import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { assertNoLeftovers, CLI, fcvm, vmsAvailable } from '../helpers.js';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const oneLine = (s: string) => s.trim().split('\n').length === 1;

test('fcvm cp: in and out of a running VM\'s container by podman cp\'s rules, "-" streams, and the host kept safe from what comes up', async (t) => {
  if (!vmsAvailable(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-it-cp-'));
  t.after(async () => {
    await fcvm(['rm', '-f', 'it-cp']);
    rmSync(dir, { recursive: true, force: true });
  });
  const run = await fcvm(['podman', 'run', '-d', '--name', 'it-cp', 'localhost/bb', 'sleep', '3600']);
  assert.equal(run.exitCode, 0, run.stderr);

  // A tree with a 3 MiB binary file, a subdirectory, both kinds of symbolic link, a mode and an owner.
  const src = join(dir, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'blob'), randomBytes(3 << 20));
  writeFileSync(join(src, 'sub', 'note'), 'hello\n', { mode: 0o750 });
  symlinkSync('sub/note', join(src, 'rel'));
  symlinkSync('/etc/hostname', join(src, 'abs'));
  chownSync(join(src, 'sub', 'note'), 1234, 1234);

  // In: "/in" does not exist, so it becomes the copy; a second copy lands under it.
  for (const args of [[src, 'it-cp:/in'], [join(src, 'sub', 'note'), 'it-cp:/in/'], ['--archive=false', join(src, 'sub', 'note'), 'it-cp:/tmp/kept']]) {
    const r = await fcvm(['cp', ...args]);
    assert.equal(r.exitCode, 0, `cp ${args.join(' ')}: ${r.stderr}`);
  }
  const seen = await fcvm(['exec', 'it-cp', 'sh', '-c', 'cat /in/sub/note /in/note; readlink /in/rel; readlink /in/abs; stat -c "%a %u" /in/sub/note /tmp/kept; sha256sum /in/blob']);
  assert.equal(seen.exitCode, 0, seen.stderr);
  assert.deepEqual(seen.stdout.trim().split('\n').slice(0, 6), ['hello', 'hello', 'sub/note', '/etc/hostname', '750 0', '750 1234'],
    'contents, links verbatim, the mode; owner root as podman cp --archive gives it, kept with --archive=false');
  assert.match(seen.stdout, new RegExp(`^${sha(join(src, 'blob'))}  /in/blob$`, 'm'));

  // Out, to a new name, then into an existing directory, then only the contents ("/.").
  const out = join(dir, 'out');
  for (const [from, to] of [['it-cp:/in', out], ['it-cp:/in', out], ['it-cp:/in/.', join(dir, 'contents')], ['it-cp:/in/sub/note', join(dir, 'note.txt')]]) {
    if (to === join(dir, 'contents')) mkdirSync(to);
    const r = await fcvm(['cp', from!, to!]);
    assert.equal(r.exitCode, 0, `cp ${from} ${to}: ${r.stderr}`);
  }
  assert.equal(sha(join(out, 'blob')), sha(join(src, 'blob')));
  assert.equal(readlinkSync(join(out, 'abs')), '/etc/hostname', 'an absolute link comes back verbatim, not followed');
  assert.equal(readlinkSync(join(out, 'rel')), 'sub/note');
  assert.equal(lstatSync(join(out, 'sub', 'note')).mode & 0o777, 0o750);
  assert.equal(sha(join(out, 'in', 'blob')), sha(join(src, 'blob')), 'into an existing directory: under its name');
  assert.deepEqual(readdirSync(join(dir, 'contents')).sort(), ['abs', 'blob', 'note', 'rel', 'sub']);
  assert.equal(readFileSync(join(dir, 'note.txt'), 'utf8'), 'hello\n');

  // "-": a tar stream on stdout, and one on stdin.
  const listed = execFileSync('bash', ['-c', `"${process.execPath}" -- "${CLI}" cp it-cp:/in/sub - | tar -tf -`], { encoding: 'utf8' });
  assert.deepEqual(listed.trim().split('\n').sort(), ['sub', 'sub/note']);
  const streamed = await execa(process.execPath, ['--', CLI, 'cp', '-', 'it-cp:/tmp'], { input: execFileSync('tar', ['-C', src, '-cf', '-', 'sub']), reject: false });
  assert.equal(streamed.exitCode, 0, String(streamed.stderr));
  assert.equal((await fcvm(['exec', 'it-cp', 'cat', '/tmp/sub/note'])).stdout, 'hello\n');

  // What the container holds that the host must not take as it is: a FIFO, a setuid file,
  // a link to the host's /etc/shadow (kept as a link, never followed).
  const made = await fcvm(['exec', 'it-cp', 'sh', '-c', 'mkdir /odd && mkfifo /odd/fifo && echo x > /odd/suid && chmod 4755 /odd/suid && ln -s /etc/shadow /odd/shadow']);
  assert.equal(made.exitCode, 0, made.stderr);
  const odd = await fcvm(['cp', 'it-cp:/odd', join(dir, 'odd')]);
  assert.equal(odd.exitCode, 0, odd.stderr);
  assert.match(odd.stderr, /1 device node\(s\), FIFO\(s\) or socket\(s\) were not made/);
  assert.deepEqual(readdirSync(join(dir, 'odd')).sort(), ['shadow', 'suid']);
  assert.equal(lstatSync(join(dir, 'odd', 'suid')).mode & 0o7777, 0o755, 'no setuid bit on the host');
  assert.equal(readlinkSync(join(dir, 'odd', 'shadow')), '/etc/shadow');

  // Ctrl-C in the middle of a copy in: fcvm ends with 130 at once (its tar does not
  // wait on a pipe nobody reads any more), and nothing of the copy stays in the guest.
  writeFileSync(join(dir, 'huge'), randomBytes(1 << 20));
  execFileSync('sh', ['-c', `for i in $(seq 1 200); do cat "${join(dir, 'huge')}"; done > "${join(dir, 'huge.bin')}"`]);
  rmSync(join(dir, 'huge'));
  const big = execa(process.execPath, ['--', CLI, 'cp', join(dir, 'huge.bin'), 'it-cp:/tmp/huge'], { reject: false, timeout: 60_000 });
  await new Promise((r) => setTimeout(r, 3000));
  const t0 = Date.now();
  big.kill('SIGINT');
  const cut = await big;
  assert.equal(cut.exitCode, 130, String(cut.stderr));
  assert.ok(Date.now() - t0 < 20_000, `ended ${Date.now() - t0} ms after Ctrl-C`);
  rmSync(join(dir, 'huge.bin'));
  const scratch = await fcvm(['exec', 'it-cp', '--vm', 'sh', '-c', 'ls /var/tmp | grep -c fcvm-cp; true']);
  assert.equal(scratch.stdout.trim(), '0', 'no scratch directory left in the guest');

  // Mistakes: one line each, exit 125, nothing made.
  for (const [args, re] of [
    [['cp', join(dir, 'nothing'), 'it-cp:/x'], /"[^"]*nothing" does not exist on the host/],
    // The guest podman's refusals, as one line that names the VM (not the guest's
    // container ID, nor its scratch directory).
    [['cp', 'it-cp:/nothing', join(dir, 'x')], /^fcvm: cp: "\/nothing" could not be found on container it-cp: no such file or directory\. /],
    [['cp', join(dir, 'src'), 'it-cp:/proc/nosuch/x'], /^fcvm: cp: (?!.*fcvm-cp\.).*\/proc\/nosuch/],
    [['cp', 'it-cp:/in', join(dir, 'note.txt')], /cannot copy the directory "in" onto the file/],
    [['cp', 'it-cp:/in', join(dir, 'no', 'such', 'dir')], /the directory ".*no\/such" does not exist on the host/],
    [['cp', 'nosuchvm:/x', dir], /no running VM named "nosuchvm"/],
    [['cp', join(dir, 'a'), join(dir, 'b')], /neither .* names a VM/],
    [['cp', 'a:/x', 'b:/y'], /from one VM to another/],
  ] as [string[], RegExp][]) {
    const r = await fcvm(args);
    assert.equal(r.exitCode, 125, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.ok(oneLine(r.stderr), r.stderr);
  }
  assert.deepEqual(readdirSync(dir).sort(), ['contents', 'note.txt', 'odd', 'out', 'src']);

  assert.equal((await fcvm(['rm', '-f', 'it-cp'])).exitCode, 0);
  assertNoLeftovers();
});
