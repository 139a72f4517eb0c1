/**
 * A POSIX conformance suite in the spirit of pjdfstest, for volumes: table-driven
 * cases of chmod, chown, link, mkdir, mkfifo, mknod, open, rename, rmdir, symlink,
 * truncate, unlink and utimensat, with their error codes (ENAMETOOLONG, ELOOP, EEXIST,
 * ENOTEMPTY, EACCES, EPERM, ENOTDIR, EISDIR, ...) and ctime/mtime updates.
 *
 *   node conformance.js DIR      (as root; DIR is emptied and used)
 *
 * Each case gets its own directory. Set-up runs as root; the operation runs as root or
 * as an unprivileged user (65534:65534, in one child process for all such cases); then
 * the case checks the result: the errno, and what changed. Prints one line per failure
 * and "N passed, M failed" at the end; exits 1 if any failed. Runs on Node 18 (the
 * guest's) and needs only coreutils besides.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';

type Op = [string, ...unknown[]];
type Stat = fs.BigIntStats;

interface Case {
  name: string;
  setup?: (d: string) => void;
  /** The operation: a name from OPS and its arguments; paths are relative to the case dir. */
  op: Op;
  user?: boolean;
  /** 'ok' or the errno code expected. */
  expect: string;
  /** Checks after the operation; `before` holds lstat results of `watch` taken before it. */
  watch?: string[];
  check?: (d: string, before: Map<string, Stat>) => string | undefined;
}

const USER = 65534;
const long = (n: number) => 'x'.repeat(n);

/** Operations by name, so the unprivileged child can run the same table. */
const OPS: Record<string, (d: string, ...a: any[]) => void> = {
  chmod: (d, p: string, m: number) => fs.chmodSync(join(d, p), m),
  chown: (d, p: string, u: number, g: number) => fs.chownSync(join(d, p), u, g),
  lchown: (d, p: string, u: number, g: number) => fs.lchownSync(join(d, p), u, g),
  link: (d, a: string, b: string) => fs.linkSync(join(d, a), join(d, b)),
  mkdir: (d, p: string, m: number) => fs.mkdirSync(join(d, p), m),
  mkfifo: (d, p: string, m: number) => run('mkfifo', ['-m', m.toString(8), join(d, p)]),
  mknod: (d, p: string, t: string, maj: number, min: number) => run('mknod', ['-m', '0600', join(d, p), t, ...(t === 'p' ? [] : [String(maj), String(min)])]),
  open: (d, p: string, flags: number, m?: number) => fs.closeSync(fs.openSync(join(d, p), flags, m)),
  write: (d, p: string, data: string) => fs.writeFileSync(join(d, p), data, { flag: 'r+' }),
  rename: (d, a: string, b: string) => fs.renameSync(join(d, a), join(d, b)),
  // Not join(): it would turn "d/." into "d".
  rmdir: (d, p: string) => fs.rmdirSync(`${d}/${p}`),
  symlink: (d, target: string, p: string) => fs.symlinkSync(target, join(d, p)),
  truncate: (d, p: string, n: number) => fs.truncateSync(join(d, p), n),
  unlink: (d, p: string) => fs.unlinkSync(join(d, p)),
  utimes: (d, p: string, a: number, m: number) => fs.utimesSync(join(d, p), a, m),
  /** Node turns negative numbers into "now"; Dates pass through. */
  utimesDate: (d, p: string, a: number, m: number) => fs.utimesSync(join(d, p), new Date(a * 1000), new Date(m * 1000)),
  lutimes: (d, p: string, a: number, m: number) => fs.lutimesSync(join(d, p), a, m),
  /** utimensat(UTIME_NOW, UTIME_NOW), which needs only write permission. */
  touchNow: (d, p: string) => run('touch', ['-c', join(d, p)]),
  readlink: (d, p: string) => void fs.readlinkSync(join(d, p)),
  stat: (d, p: string) => void fs.statSync(join(d, p)),
  readdir: (d, p: string) => void fs.readdirSync(join(d, p)),
};

const MESSAGES: [RegExp, string][] = [
  [/Permission denied/, 'EACCES'], [/Operation not permitted/, 'EPERM'], [/File exists/, 'EEXIST'],
  [/No such file/, 'ENOENT'], [/Not a directory/, 'ENOTDIR'], [/Is a directory/, 'EISDIR'],
  [/File name too long/, 'ENAMETOOLONG'], [/Too many levels/, 'ELOOP'], [/Read-only/, 'EROFS'], [/Invalid argument/, 'EINVAL'],
];

/** Runs a coreutils command; a failure becomes an Error with the errno its message names. */
function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status === 0) return;
  const code = MESSAGES.find(([re]) => re.test(r.stderr))?.[1] ?? `EXIT${r.status}:${r.stderr.trim()}`;
  throw Object.assign(new Error(r.stderr), { code });
}

function attempt(d: string, op: Op): string {
  try {
    OPS[op[0]]!(d, ...op.slice(1));
    return 'ok';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

const O = fs.constants;
const file = (p: string, mode = 0o644, data = 'data') => (d: string) => {
  fs.writeFileSync(join(d, p), data);
  fs.chmodSync(join(d, p), mode);
};
const dir = (p: string, mode = 0o755) => (d: string) => {
  fs.mkdirSync(join(d, p));
  fs.chmodSync(join(d, p), mode);
};
const all = (...fns: ((d: string) => void)[]) => (d: string) => fns.forEach((f) => f(d));
const owned = (p: string, uid = USER, gid = USER) => (d: string) => fs.lchownSync(join(d, p), uid, gid);
const lst = (d: string, p: string) => fs.lstatSync(join(d, p), { bigint: true });
const later = (a: bigint, b: bigint) => b > a;
const want = (cond: boolean, msg: string) => (cond ? undefined : msg);
const ctimeUp = (p: string) => (d: string, b: Map<string, Stat>) => want(later(b.get(p)!.ctimeNs, lst(d, p).ctimeNs), `ctime of ${p} not updated`);
const mtimeUp = (p: string) => (d: string, b: Map<string, Stat>) => want(later(b.get(p)!.mtimeNs, lst(d, p).mtimeNs), `mtime of ${p} not updated`);
const both = (...checks: ((d: string, b: Map<string, Stat>) => string | undefined)[]) => (d: string, b: Map<string, Stat>) => {
  for (const c of checks) {
    const r = c(d, b);
    if (r) return r;
  }
  return undefined;
};
const modeIs = (p: string, m: number) => (d: string) => want((Number(lst(d, p).mode) & 0o7777) === m, `mode of ${p} is ${(Number(lst(d, p).mode) & 0o7777).toString(8)}, not ${m.toString(8)}`);
const exists = (p: string, yes = true) => (d: string) => want(fs.existsSync(join(d, p)) === yes, `${p} ${yes ? 'missing' : 'still there'}`);

/** Common error cases every path-taking operation shares. */
function pathErrors(name: string, mk: (p: string) => Op, needsExisting = true): Case[] {
  return [
    { name: `${name}: ENAMETOOLONG for a 256-byte component`, op: mk(long(256)), expect: 'ENAMETOOLONG' },
    { name: `${name}: ENOTDIR for a file used as a directory`, setup: file('f'), op: mk('f/x'), expect: 'ENOTDIR' },
    { name: `${name}: ENOENT in a missing directory`, op: mk('nodir/x'), expect: 'ENOENT' },
    { name: `${name}: ELOOP through a symlink loop`, setup: (d) => (fs.symlinkSync('l2', join(d, 'l1')), fs.symlinkSync('l1', join(d, 'l2'))), op: mk('l1/x'), expect: 'ELOOP' },
    ...(needsExisting ? [{ name: `${name}: ENOENT for a missing name`, op: mk('missing'), expect: 'ENOENT' }] : []),
    { name: `${name}: EACCES without search permission`, setup: all(dir('locked', 0o700), file('locked/f')), op: mk('locked/f'), user: true, expect: 'EACCES' },
  ];
}

const NOW = Math.floor(Date.now() / 1000);

export const CASES: Case[] = [
  // chmod
  { name: 'chmod: changes the mode and ctime', setup: file('f'), watch: ['f'], op: ['chmod', 'f', 0o751], expect: 'ok', check: both(modeIs('f', 0o751), ctimeUp('f')) },
  { name: 'chmod: setuid/setgid/sticky bits by root', setup: file('f'), op: ['chmod', 'f', 0o7755], expect: 'ok', check: modeIs('f', 0o7755) },
  { name: 'chmod: by the owner', setup: all(file('f'), owned('f')), op: ['chmod', 'f', 0o600], user: true, expect: 'ok', check: modeIs('f', 0o600) },
  { name: 'chmod: EPERM for a non-owner', setup: file('f', 0o666), op: ['chmod', 'f', 0o600], user: true, expect: 'EPERM' },
  { name: 'chmod: setgid dropped for a non-member group', setup: all(file('f'), owned('f', USER, 0)), op: ['chmod', 'f', 0o2755], user: true, expect: 'ok', check: modeIs('f', 0o755) },
  { name: 'chmod: a directory', setup: dir('d'), op: ['chmod', 'd', 0o700], expect: 'ok', check: modeIs('d', 0o700) },
  ...pathErrors('chmod', (p) => ['chmod', p, 0o644]),
  // chown
  { name: 'chown: root gives a file away; ctime updated', setup: file('f'), watch: ['f'], op: ['chown', 'f', 1234, 5678], expect: 'ok', check: both((d) => want(lst(d, 'f').uid === 1234n && lst(d, 'f').gid === 5678n, 'owner not changed'), ctimeUp('f')) },
  { name: 'chown: -1 keeps the owner', setup: all(file('f'), owned('f', 1234, 1234)), op: ['chown', 'f', -1, 99], expect: 'ok', check: (d) => want(lst(d, 'f').uid === 1234n && lst(d, 'f').gid === 99n, 'wrong owner') },
  { name: 'chown: EPERM for a non-owner', setup: file('f', 0o666), op: ['chown', 'f', USER, USER], user: true, expect: 'EPERM' },
  { name: 'chown: EPERM for the owner giving the file away', setup: all(file('f'), owned('f')), op: ['chown', 'f', 0, -1], user: true, expect: 'EPERM' },
  { name: 'chown: the owner may set its own group', setup: all(file('f'), owned('f', USER, 0)), op: ['chown', 'f', -1, USER], user: true, expect: 'ok' },
  { name: 'chown: clears setuid/setgid of a regular file', setup: all(file('f'), (d) => fs.chmodSync(join(d, 'f'), 0o6755)), op: ['chown', 'f', 1234, 1234], expect: 'ok', check: modeIs('f', 0o755) },
  { name: 'chown: lchown changes the symlink, not its target', setup: all(file('f'), (d) => fs.symlinkSync('f', join(d, 'l'))), op: ['lchown', 'l', 1234, 1234], expect: 'ok', check: (d) => want(lst(d, 'l').uid === 1234n && lst(d, 'f').uid === 0n, 'lchown followed the link') },
  ...pathErrors('chown', (p) => ['chown', p, 0, 0]),
  // link
  { name: 'link: second name; nlink 2; ctime of the file and mtime of the dir', setup: file('f'), watch: ['f', '.'], op: ['link', 'f', 'g'], expect: 'ok', check: both((d) => want(lst(d, 'f').nlink === 2n && lst(d, 'g').ino === lst(d, 'f').ino, 'not linked'), ctimeUp('f'), mtimeUp('.')) },
  { name: 'link: EEXIST for an existing name', setup: all(file('f'), file('g')), op: ['link', 'f', 'g'], expect: 'EEXIST' },
  { name: 'link: EPERM for a directory', setup: dir('d'), op: ['link', 'd', 'e'], expect: 'EPERM' },
  { name: 'link: ENOENT for a missing source', op: ['link', 'missing', 'g'], expect: 'ENOENT' },
  { name: 'link: EACCES without write permission on the directory', setup: all(dir('d', 0o755), file('f', 0o666)), op: ['link', 'f', 'd/g'], user: true, expect: 'EACCES' },
  { name: 'link: ENAMETOOLONG for the new name', setup: file('f'), op: ['link', 'f', long(256)], expect: 'ENAMETOOLONG' },
  { name: 'link: 255-byte names work', setup: file('f'), op: ['link', 'f', long(255)], expect: 'ok', check: exists(long(255)) },
  // mkdir
  { name: 'mkdir: creates with the mode; parent mtime and ctime', watch: ['.'], op: ['mkdir', 'd', 0o750], expect: 'ok', check: both(modeIs('d', 0o750), mtimeUp('.'), ctimeUp('.')) },
  { name: 'mkdir: EEXIST for a file', setup: file('f'), op: ['mkdir', 'f', 0o755], expect: 'EEXIST' },
  { name: 'mkdir: EEXIST for a symlink, even dangling', setup: (d) => fs.symlinkSync('nowhere', join(d, 'l')), op: ['mkdir', 'l', 0o755], expect: 'EEXIST' },
  { name: 'mkdir: EACCES in a directory without write permission', setup: dir('d', 0o755), op: ['mkdir', 'd/e', 0o755], user: true, expect: 'EACCES' },
  { name: 'mkdir: owned by the creating user', setup: dir('d', 0o777), op: ['mkdir', 'd/e', 0o755], user: true, expect: 'ok', check: (d) => want(lst(d, 'd/e').uid === BigInt(USER) && lst(d, 'd/e').gid === BigInt(USER), `owner ${lst(d, 'd/e').uid}:${lst(d, 'd/e').gid}`) },
  { name: 'mkdir: a setgid parent passes on its group and the bit', setup: all(dir('d', 0o777), owned('d', 0, 4321), (d) => fs.chmodSync(join(d, 'd'), 0o2777)), op: ['mkdir', 'd/e', 0o755], user: true, expect: 'ok', check: (d) => want(lst(d, 'd/e').gid === 4321n && (Number(lst(d, 'd/e').mode) & 0o2000) !== 0, 'setgid not inherited') },
  ...pathErrors('mkdir', (p) => ['mkdir', p, 0o755], false),
  // mkfifo, mknod
  { name: 'mkfifo: creates a FIFO', watch: ['.'], op: ['mkfifo', 'p', 0o640], expect: 'ok', check: both((d) => want(lst(d, 'p').isFIFO(), 'not a FIFO'), modeIs('p', 0o640), mtimeUp('.')) },
  { name: 'mkfifo: EEXIST', setup: file('f'), op: ['mkfifo', 'f', 0o644], expect: 'EEXIST' },
  { name: 'mkfifo: EACCES without write permission', setup: dir('d', 0o755), op: ['mkfifo', 'd/p', 0o644], user: true, expect: 'EACCES' },
  { name: 'mknod: a character device keeps its numbers', op: ['mknod', 'c', 'c', 1, 3], expect: 'ok', check: (d) => want(lst(d, 'c').isCharacterDevice() && lst(d, 'c').rdev === 0x103n, `rdev ${lst(d, 'c').rdev}`) },
  { name: 'mknod: a block device with a large minor', op: ['mknod', 'b', 'b', 8, 300], expect: 'ok', check: (d) => want(lst(d, 'b').isBlockDevice(), 'not a block device') },
  { name: 'mknod: EPERM for a device as a user', setup: dir('d', 0o777), op: ['mknod', 'd/c', 'c', 1, 3], user: true, expect: 'EPERM' },
  { name: 'mknod: EEXIST', setup: file('f'), op: ['mknod', 'f', 'p', 0, 0], expect: 'EEXIST' },
  // open
  { name: 'open: O_CREAT makes a file with the mode; parent mtime', watch: ['.'], op: ['open', 'f', O.O_CREAT | O.O_WRONLY, 0o640], expect: 'ok', check: both(modeIs('f', 0o640), mtimeUp('.')) },
  { name: 'open: O_CREAT|O_EXCL on an existing file is EEXIST', setup: file('f'), op: ['open', 'f', O.O_CREAT | O.O_EXCL | O.O_WRONLY, 0o644], expect: 'EEXIST' },
  { name: 'open: O_CREAT|O_EXCL on a dangling symlink is EEXIST', setup: (d) => fs.symlinkSync('nowhere', join(d, 'l')), op: ['open', 'l', O.O_CREAT | O.O_EXCL | O.O_WRONLY, 0o644], expect: 'EEXIST' },
  { name: 'open: O_WRONLY on a directory is EISDIR', setup: dir('d'), op: ['open', 'd', O.O_WRONLY], expect: 'EISDIR' },
  { name: 'open: O_RDWR on a directory is EISDIR', setup: dir('d'), op: ['open', 'd', O.O_RDWR], expect: 'EISDIR' },
  { name: 'open: O_DIRECTORY on a file is ENOTDIR', setup: file('f'), op: ['open', 'f', O.O_RDONLY | O.O_DIRECTORY], expect: 'ENOTDIR' },
  { name: 'open: O_NOFOLLOW on a symlink is ELOOP', setup: all(file('f'), (d) => fs.symlinkSync('f', join(d, 'l'))), op: ['open', 'l', O.O_RDONLY | O.O_NOFOLLOW], expect: 'ELOOP' },
  { name: 'open: a symlink loop is ELOOP', setup: (d) => (fs.symlinkSync('l2', join(d, 'l1')), fs.symlinkSync('l1', join(d, 'l2'))), op: ['open', 'l1', O.O_RDONLY], expect: 'ELOOP' },
  { name: 'open: EACCES reading a 0200 file as another user', setup: file('f', 0o200), op: ['open', 'f', O.O_RDONLY], user: true, expect: 'EACCES' },
  { name: 'open: EACCES writing a 0444 file as another user', setup: file('f', 0o444), op: ['open', 'f', O.O_WRONLY], user: true, expect: 'EACCES' },
  { name: 'open: EACCES creating in a 0755 directory as another user', setup: dir('d', 0o755), op: ['open', 'd/f', O.O_CREAT | O.O_WRONLY, 0o644], user: true, expect: 'EACCES' },
  { name: 'open: root opens a 0000 file', setup: file('f', 0), op: ['open', 'f', O.O_RDWR], expect: 'ok' },
  { name: 'open: O_TRUNC empties the file; mtime and ctime', setup: file('f'), watch: ['f'], op: ['open', 'f', O.O_WRONLY | O.O_TRUNC], expect: 'ok', check: both((d) => want(lst(d, 'f').size === 0n, 'not truncated'), mtimeUp('f'), ctimeUp('f')) },
  { name: 'open: a user\'s O_CREAT file belongs to that user', setup: dir('d', 0o777), op: ['open', 'd/f', O.O_CREAT | O.O_WRONLY, 0o600], user: true, expect: 'ok', check: (d) => want(lst(d, 'd/f').uid === BigInt(USER), 'wrong owner') },
  { name: 'open: a write updates mtime and ctime', setup: file('f'), watch: ['f'], op: ['write', 'f', 'more'], expect: 'ok', check: both(mtimeUp('f'), ctimeUp('f')) },
  ...pathErrors('open', (p) => ['open', p, O.O_RDONLY]),
  // rename
  { name: 'rename: moves a file; both dirs\' mtime', setup: all(file('f'), dir('d')), watch: ['.', 'd'], op: ['rename', 'f', 'd/g'], expect: 'ok', check: both(exists('f', false), exists('d/g'), mtimeUp('.'), mtimeUp('d')) },
  { name: 'rename: replaces a file and keeps the inode', setup: all(file('f', 0o644, 'new'), file('g', 0o644, 'old')), op: ['rename', 'f', 'g'], expect: 'ok', check: (d) => want(fs.readFileSync(join(d, 'g'), 'utf8') === 'new', 'not replaced') },
  { name: 'rename: a directory over an empty one', setup: all(dir('a'), file('a/f'), dir('b')), op: ['rename', 'a', 'b'], expect: 'ok', check: exists('b/f') },
  { name: 'rename: ENOTEMPTY over a non-empty directory', setup: all(dir('a'), dir('b'), file('b/f')), op: ['rename', 'a', 'b'], expect: 'ENOTEMPTY' },
  { name: 'rename: ENOTDIR for a directory over a file', setup: all(dir('a'), file('f')), op: ['rename', 'a', 'f'], expect: 'ENOTDIR' },
  { name: 'rename: EISDIR for a file over a directory', setup: all(dir('a'), file('f')), op: ['rename', 'f', 'a'], expect: 'EISDIR' },
  { name: 'rename: EINVAL into its own subdirectory', setup: all(dir('a'), dir('a/b')), op: ['rename', 'a', 'a/b/c'], expect: 'EINVAL' },
  { name: 'rename: ENOENT for a missing source', op: ['rename', 'missing', 'x'], expect: 'ENOENT' },
  { name: 'rename: two names of one file: nothing happens', setup: all(file('f'), (d) => fs.linkSync(join(d, 'f'), join(d, 'g'))), op: ['rename', 'f', 'g'], expect: 'ok', check: both(exists('f'), exists('g')) },
  { name: 'rename: EPERM in a sticky directory for another\'s file', setup: all(dir('s', 0o1777), file('s/f', 0o666)), op: ['rename', 's/f', 's/g'], user: true, expect: 'EPERM' },
  { name: 'rename: EACCES without write permission', setup: all(dir('d', 0o755), file('d/f', 0o666)), op: ['rename', 'd/f', 'd/g'], user: true, expect: 'EACCES' },
  { name: 'rename: a symlink, not its target', setup: all(file('f'), (d) => fs.symlinkSync('f', join(d, 'l'))), op: ['rename', 'l', 'm'], expect: 'ok', check: (d) => want(lst(d, 'm').isSymbolicLink() && fs.existsSync(join(d, 'f')), 'target moved') },
  { name: 'rename: ENAMETOOLONG for the new name', setup: file('f'), op: ['rename', 'f', long(256)], expect: 'ENAMETOOLONG' },
  ...pathErrors('rename', (p) => ['rename', p, 'dest']),
  // rmdir
  { name: 'rmdir: removes; parent mtime', setup: dir('d'), watch: ['.'], op: ['rmdir', 'd'], expect: 'ok', check: both(exists('d', false), mtimeUp('.')) },
  { name: 'rmdir: ENOTEMPTY', setup: all(dir('d'), file('d/f')), op: ['rmdir', 'd'], expect: 'ENOTEMPTY' },
  { name: 'rmdir: ENOTDIR for a file', setup: file('f'), op: ['rmdir', 'f'], expect: 'ENOTDIR' },
  { name: 'rmdir: ENOTDIR for a symlink to a directory', setup: all(dir('d'), (d) => fs.symlinkSync('d', join(d, 'l'))), op: ['rmdir', 'l'], expect: 'ENOTDIR' },
  { name: 'rmdir: EINVAL for "."', setup: dir('d'), op: ['rmdir', 'd/.'], expect: 'EINVAL' },
  { name: 'rmdir: EPERM in a sticky directory', setup: all(dir('s', 0o1777), dir('s/d', 0o777)), op: ['rmdir', 's/d'], user: true, expect: 'EPERM' },
  { name: 'rmdir: EACCES without write permission', setup: all(dir('p', 0o755), dir('p/d', 0o777)), op: ['rmdir', 'p/d'], user: true, expect: 'EACCES' },
  ...pathErrors('rmdir', (p) => ['rmdir', p]),
  // symlink
  { name: 'symlink: creates; readlink gives the target; parent mtime', watch: ['.'], op: ['symlink', 'some/target', 'l'], expect: 'ok', check: both((d) => want(fs.readlinkSync(join(d, 'l')) === 'some/target', 'wrong target'), mtimeUp('.')) },
  { name: 'symlink: EEXIST', setup: file('f'), op: ['symlink', 'x', 'f'], expect: 'EEXIST' },
  { name: 'symlink: a 4095-byte target', op: ['symlink', long(4095), 'l'], expect: 'ok', check: (d) => want(fs.readlinkSync(join(d, 'l')).length === 4095, 'target cut') },
  { name: 'symlink: ENAMETOOLONG for a 4096-byte target', op: ['symlink', long(4096), 'l'], expect: 'ENAMETOOLONG' },
  { name: 'symlink: an absolute target is kept as written', op: ['symlink', '/etc/shadow', 'l'], expect: 'ok', check: (d) => want(fs.readlinkSync(join(d, 'l')) === '/etc/shadow', 'wrong target') },
  { name: 'symlink: EACCES without write permission', setup: dir('d', 0o755), op: ['symlink', 'x', 'd/l'], user: true, expect: 'EACCES' },
  ...pathErrors('symlink', (p) => ['symlink', 'target', p], false),
  // truncate
  { name: 'truncate: shrinks; mtime and ctime', setup: file('f', 0o644, '0123456789'), watch: ['f'], op: ['truncate', 'f', 3], expect: 'ok', check: both((d) => want(fs.readFileSync(join(d, 'f'), 'utf8') === '012', 'wrong content'), mtimeUp('f'), ctimeUp('f')) },
  { name: 'truncate: grows with zeros', setup: file('f', 0o644, 'ab'), op: ['truncate', 'f', 5], expect: 'ok', check: (d) => want(fs.readFileSync(join(d, 'f')).equals(Buffer.from('ab\0\0\0')), 'wrong content') },
  { name: 'truncate: a large sparse size', setup: file('f'), op: ['truncate', 'f', 2 ** 40], expect: 'ok', check: (d) => want(lst(d, 'f').size === 2n ** 40n, 'wrong size') },
  { name: 'truncate: EISDIR for a directory', setup: dir('d'), op: ['truncate', 'd', 0], expect: 'EISDIR' },
  { name: 'truncate: EACCES without write permission', setup: file('f', 0o644), op: ['truncate', 'f', 0], user: true, expect: 'EACCES' },
  { name: 'truncate: a user with write permission', setup: file('f', 0o666), op: ['truncate', 'f', 1], user: true, expect: 'ok' },
  ...pathErrors('truncate', (p) => ['truncate', p, 0]),
  // unlink
  { name: 'unlink: removes; parent mtime; the other name\'s nlink and ctime', setup: all(file('f'), (d) => fs.linkSync(join(d, 'f'), join(d, 'g'))), watch: ['.', 'g'], op: ['unlink', 'f'], expect: 'ok', check: both(exists('f', false), (d) => want(lst(d, 'g').nlink === 1n, 'nlink not 1'), mtimeUp('.'), ctimeUp('g')) },
  { name: 'unlink: a symlink, not its target', setup: all(file('f'), (d) => fs.symlinkSync('f', join(d, 'l'))), op: ['unlink', 'l'], expect: 'ok', check: both(exists('l', false), exists('f')) },
  { name: 'unlink: EISDIR for a directory', setup: dir('d'), op: ['unlink', 'd'], expect: 'EISDIR' },
  { name: 'unlink: EPERM in a sticky directory', setup: all(dir('s', 0o1777), file('s/f', 0o666)), op: ['unlink', 's/f'], user: true, expect: 'EPERM' },
  { name: 'unlink: the owner may in a sticky directory', setup: all(dir('s', 0o1777), file('s/f'), owned('s/f')), op: ['unlink', 's/f'], user: true, expect: 'ok' },
  { name: 'unlink: EACCES without write permission', setup: all(dir('d', 0o755), file('d/f', 0o666)), op: ['unlink', 'd/f'], user: true, expect: 'EACCES' },
  { name: 'unlink: a FIFO', setup: (d) => run('mkfifo', [join(d, 'p')]), op: ['unlink', 'p'], expect: 'ok', check: exists('p', false) },
  ...pathErrors('unlink', (p) => ['unlink', p]),
  // utimensat
  { name: 'utimensat: explicit times, to the nanosecond the file system keeps', setup: file('f'), watch: ['f'], op: ['utimes', 'f', 1_000_000_000.5, 1_500_000_000.25], expect: 'ok', check: both((d) => want(lst(d, 'f').atimeNs === 1_000_000_000_500_000_000n && lst(d, 'f').mtimeNs === 1_500_000_000_250_000_000n, `times ${lst(d, 'f').atimeNs} ${lst(d, 'f').mtimeNs}`), ctimeUp('f')) },
  { name: 'utimensat: times before 1970', setup: file('f'), op: ['utimesDate', 'f', -1000, -2000], expect: 'ok', check: (d) => want(lst(d, 'f').mtimeNs === -2_000_000_000_000n, `mtime ${lst(d, 'f').mtimeNs}`) },
  { name: 'utimensat: UTIME_NOW by a user with write permission', setup: all(file('f', 0o666), (d) => fs.utimesSync(join(d, 'f'), 1000, 1000)), op: ['touchNow', 'f'], user: true, expect: 'ok', check: (d) => want(lst(d, 'f').mtimeNs > BigInt(NOW - 60) * 1_000_000_000n, 'mtime not now') },
  { name: 'utimensat: EPERM for explicit times by a non-owner', setup: file('f', 0o666), op: ['utimes', 'f', 1000, 1000], user: true, expect: 'EPERM' },
  { name: 'utimensat: EACCES for UTIME_NOW without write permission', setup: file('f', 0o644), op: ['touchNow', 'f'], user: true, expect: 'EACCES' },
  { name: 'utimensat: the owner sets explicit times', setup: all(file('f', 0o444), owned('f')), op: ['utimes', 'f', 1000, 2000], user: true, expect: 'ok' },
  { name: 'utimensat: a symlink itself (AT_SYMLINK_NOFOLLOW)', setup: all(file('f'), (d) => fs.symlinkSync('f', join(d, 'l'))), op: ['lutimes', 'l', 1000, 3000], expect: 'ok', check: (d) => want(lst(d, 'l').mtimeNs === 3_000_000_000_000n && lst(d, 'f').mtimeNs !== 3_000_000_000_000n, 'lutimes followed the link') },
  ...pathErrors('utimensat', (p) => ['utimes', p, 1, 1]),
  // directory listing
  { name: 'readdir: 300 entries, each once', setup: (d) => { fs.mkdirSync(join(d, 'many')); for (let i = 0; i < 300; i++) fs.writeFileSync(join(d, 'many', `f${i}`), ''); }, op: ['readdir', 'many'], expect: 'ok', check: (d) => { const n = fs.readdirSync(join(d, 'many')); return want(n.length === 300 && new Set(n).size === 300, `${n.length} entries`); } },
];

/** The process entry: runs the table under argv[2] (or, with --child, the unprivileged half); returns the exit code. */
function main(argv: string[]): number {
  const root = argv[2];
  if (!root) {
    process.stderr.write('usage: node conformance.js DIR\n');
    return 2;
  }
  if (argv[3] === '--child') {
    child(root, argv[4]!);
    return 0;
  }
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  fs.chmodSync(root, 0o755);
  process.umask(0o022);
  const dirs = CASES.map((_, i) => join(root, `c${i}`));
  const setupErrors = new Map<number, string>();
  CASES.forEach((c, i) => {
    fs.mkdirSync(dirs[i]!);
    fs.chmodSync(dirs[i]!, 0o777);
    try {
      c.setup?.(dirs[i]!);
    } catch (e) {
      setupErrors.set(i, `setup failed: ${(e as Error).message}`);
    }
  });
  const before = CASES.map((c, i) => new Map((c.watch ?? []).map((p) => [p, lst(dirs[i]!, p)] as [string, Stat])));
  spawnSync('sleep', ['0.05']);
  const results: string[] = [];
  // Unprivileged operations all run in one child process, in table order.
  const userIdx = CASES.flatMap((c, i) => (c.user && !setupErrors.has(i) ? [i] : []));
  if (userIdx.length > 0) {
    const r = spawnSync(process.execPath, [argv[1]!, root, '--child', JSON.stringify(userIdx)], { uid: USER, gid: USER, encoding: 'utf8' });
    const out = r.stdout.trim().split('\n');
    if (r.status !== 0 || out.length !== userIdx.length) throw new Error(`the unprivileged child failed: ${r.stderr}`);
    userIdx.forEach((i, k) => (results[i] = out[k]!));
  }
  CASES.forEach((c, i) => {
    if (!c.user && !setupErrors.has(i)) results[i] = attempt(dirs[i]!, c.op);
  });
  let passed = 0;
  let failed = 0;
  CASES.forEach((c, i) => {
    const problem = setupErrors.get(i)
      ?? (results[i] !== c.expect ? `got ${results[i]}, expected ${c.expect}` : c.expect === 'ok' ? safe(() => c.check?.(dirs[i]!, before[i]!)) : undefined);
    if (problem) {
      failed++;
      process.stdout.write(`FAIL ${c.name}: ${problem}\n`);
    } else passed++;
  });
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}

function safe(fn: () => string | undefined): string | undefined {
  try {
    return fn();
  } catch (e) {
    return `check threw: ${(e as Error).message}`;
  }
}

/** The unprivileged half: runs the listed cases' operations, one result per line. */
function child(root: string, cases: string): void {
  const idx = JSON.parse(cases) as number[];
  process.umask(0o022);
  for (const i of idx) process.stdout.write(`${attempt(join(root, `c${i}`), CASES[i]!.op)}\n`);
}

process.exitCode = main(process.argv);
