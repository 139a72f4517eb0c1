import { lstatSync, type Stats } from 'node:fs';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { Unpack, type ReadEntry } from 'tar';
import { errors } from '../errors/catalogue.js';

/**
 * Unpacks a tar stream that came up from a guest (`podman cp CTR:SRC -`) into a host
 * directory, as podman cp places a copy, trusting nothing in the stream.
 *
 * The guest is hostile: its archive may name paths outside what was asked for, climb
 * with "..", write through a symbolic link it sent earlier (or one already on the
 * host), hard-link host files in, or carry device nodes and setuid files. node-tar
 * parses the stream; its own path rewriting is off (it would turn a copied absolute
 * symlink into a relative one), and every entry passes `Guard` instead:
 * - every path must lie under the stream's first entry (the copied file or directory),
 *   with no ".." and no absolute path; it is then placed per `Landing`;
 * - no entry is written through a symbolic link, one the stream made or one on the host;
 * - a hard link must name a regular file this stream made;
 * - only files, directories, symbolic links and hard links are made: devices, FIFOs
 *   and sockets are skipped (counted in `skipped`);
 * - files get the host user's owner, never setuid or setgid bits.
 * Symbolic links are made with their target verbatim, as podman's are; they are only
 * never followed here.
 */

/** Where the copied top entry lands: under `base`, named `root` ('' = its contents go into `base` itself). */
export interface Landing {
  base: string;
  root: string;
}

/** Decides the landing once the first entry says whether a file or a directory comes. */
export type Place = (top: { name: string; isDir: boolean }) => Landing;

const MADE = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);
const FILE_LIKE = new Set(['File', 'OldFile', 'ContiguousFile', 'Link']);

export interface ExtractResult {
  /** Entries not made: devices, FIFOs, sockets. */
  skipped: number;
}

/**
 * Unpacks `input` per `place`. Resolves once every entry is on disk; rejects with the
 * first refusal or write error (the rest of the stream is read and dropped). `refused`
 * is called at the first refusal, so the caller can stop the sender.
 */
export function extractGuestTar(input: Readable, place: Place, opts: { overwrite: boolean; refused?: () => void }): Promise<ExtractResult> {
  const guard = new Guard(place, opts.overwrite);
  let failure: Error | undefined;
  const fail = (e: Error) => {
    if (failure) return;
    failure = e;
    opts.refused?.();
  };
  const unpack = new Unpack({
    preservePaths: true,
    unlink: true,
    preserveOwner: false,
    filter: (_path, entry) => {
      if (failure) return false;
      try {
        return guard.admit(entry as ReadEntry);
      } catch (e) {
        fail(e as Error);
        return false;
      }
    },
    onwarn: (code, message) => {
      if (code !== 'TAR_ENTRY_INFO') fail(errors.copyFailed(code === 'TAR_BAD_ARCHIVE' || code === 'TAR_ENTRY_INVALID' ? `the archive from the guest is damaged (${message.replace(/^TAR_[A-Z_]+: /, '')})` : message));
    },
    cwd: '/nonexistent-until-the-first-entry',
  });
  // Where entries land is known from the first one (a file or a directory comes).
  guard.onLanding = (l) => (unpack.cwd = l.base);
  return new Promise((resolve, reject) => {
    unpack.on('error', (e: Error) => fail(errors.copyFailed(`the archive from the guest is damaged (${e.message.replace(/^TAR_[A-Z_]+: /, '')})`)));
    unpack.on('close', () => (failure ? reject(failure) : guard.top ? resolve({ skipped: guard.skipped }) : reject(errors.copyFailed('the guest sent an empty archive'))));
    input.on('error', (e) => fail(errors.copyFailed(e.message)));
    input.pipe(unpack as unknown as NodeJS.WritableStream);
  });
}

/** Checks each entry of the stream in order, and rewrites its path to where it lands. */
class Guard {
  top: string | undefined;
  landing: Landing | undefined;
  skipped = 0;
  onLanding: (l: Landing) => void = () => {};
  /** What this stream made, by landed path (relative to the base). */
  private made = new Map<string, string>();

  constructor(private place: Place, private overwrite: boolean) {}

  admit(entry: ReadEntry): boolean {
    const parts = this.split(String(entry.path), 'path');
    if (this.top === undefined) {
      this.top = parts[0]!;
      this.landing = this.place({ name: this.top, isDir: entry.type === 'Directory' || parts.length > 1 });
      this.onLanding(this.landing);
    }
    const landed = this.land(parts);
    if (landed === '') {
      if (entry.type !== 'Directory') throw errors.copyFailed(`"${parts[0]}" is not a directory`);
      return false; // the directory whose contents were asked for: the destination is already there
    }
    if (!MADE.has(entry.type)) {
      this.skipped++;
      return false;
    }
    this.checkParents(landed);
    this.checkReplace(landed, entry.type === 'Directory');
    if (entry.type === 'Link') {
      const target = this.land(this.split(String(entry.linkpath), 'link target'));
      if (!FILE_LIKE.has(this.made.get(target) ?? '')) throw errors.copyFailed(`the guest sent a hard link "${String(entry.path)}" to "${String(entry.linkpath)}", which is no file it sent`);
      this.checkParents(target);
      entry.linkpath = target;
    }
    entry.path = landed;
    if (typeof entry.mode === 'number') entry.mode &= entry.type === 'Directory' ? 0o1777 : 0o777;
    this.made.set(landed, entry.type);
    return true;
  }

  /** A stream path's parts, refusing absolute paths, "..", and paths outside the top entry. */
  private split(p: string, what: string): string[] {
    if (p.includes('\0')) throw errors.copyFailed(`the guest sent a ${what} with a NUL byte`);
    const norm = posix.normalize(p.replace(/^(\.\/)+/, '')).replace(/\/+$/, '');
    const parts = norm.split('/');
    if (norm.startsWith('/') || norm === '.' || norm === '' || parts.includes('..')) throw errors.copyFailed(`the guest sent the ${what} "${p}", which is outside what was copied`);
    if (this.top !== undefined && parts[0] !== this.top) throw errors.copyFailed(`the guest sent the ${what} "${p}", which is outside "${this.top}"`);
    return parts;
  }

  private land(parts: string[]): string {
    const l = this.landing!;
    return posix.join(l.root, ...parts.slice(1)).replace(/^\.$/, '');
  }

  /** No directory on the way to `landed` may be a symbolic link, sent or on the host. */
  private checkParents(landed: string): void {
    const parts = landed.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const kind = this.made.get(p) ?? kindOn(join(this.landing!.base, p));
      if (kind === 'SymbolicLink') throw errors.copyFailed(`"${p}" is a symbolic link: nothing is copied through one`);
    }
  }

  /** podman cp's rule: a directory does not replace a non-directory, nor the reverse, without --overwrite. */
  private checkReplace(landed: string, isDir: boolean): void {
    const kind = this.made.get(landed) ?? kindOn(join(this.landing!.base, landed));
    if (kind === undefined || this.overwrite) return;
    if (isDir && kind !== 'Directory') throw errors.copyFailed(`cannot overwrite non-directory "${landed}" with a directory`, 'Remove it first, or give --overwrite');
    if (!isDir && kind === 'Directory') throw errors.copyFailed(`cannot overwrite directory "${landed}" with a non-directory`, 'Remove it first, or give --overwrite');
  }
}

function kindOn(path: string): string | undefined {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    return undefined;
  }
  return st.isSymbolicLink() ? 'SymbolicLink' : st.isDirectory() ? 'Directory' : 'File';
}
