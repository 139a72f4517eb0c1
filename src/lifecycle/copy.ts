import { spawn } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { CIDFILE } from '../agent/podman-args.js';
import { extractGuestTar, type Place } from '../copy/extract.js';
import { errors } from '../errors/catalogue.js';
import { execInVm, type ExecRequest } from '../exec/exec-client.js';
import { findRunningVm, WAITS_FOR_START_MS } from '../exec/find-vm.js';
import type { CpOptions } from '../options/cp-options.js';
import type { Layout } from '../setup/layout.js';
import type { Logger } from '../util/log.js';

/**
 * `fcvm cp`: copies between the host and a VM's container, as podman cp does. The
 * guest's own podman does the container's side (`podman cp` against the container),
 * through an exec in the guest OS; the host sends or takes a tar stream.
 * - In: the host packs the path with tar, the guest unpacks it into a scratch
 *   directory on its disk and runs `podman cp SCRATCH/NAME CTR:DEST`, so every rule
 *   of podman's (an existing directory, "/." for contents, --archive's owner) is
 *   podman's own.
 * - Out: the guest runs `podman cp CTR:SRC -`, and the host unpacks the stream with
 *   extractGuestTar, which trusts nothing in it, placing it by podman's rules.
 */

export interface CopyIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  interrupt: AbortSignal;
}

/** The container's ID, once podman has written it (a cp right after `run -d` may come first). */
const WAIT_FOR_CONTAINER = `i=0; while [ ! -s ${CIDFILE} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; c=$(cat ${CIDFILE}) || exit 125`;

/** Copies and resolves with the exit code (podman cp's own in the guest when it failed there). */
export async function copy(layout: Layout, log: Logger, o: CpOptions, io: CopyIo): Promise<number> {
  // Host-side mistakes are found before anything reaches the VM.
  if (o.to === 'container') {
    const src = await sourceOnHost(o.hostPath);
    return copyIn(await vmExec(layout, log, o.name, io), o, src, io);
  }
  const place = await destinationOnHost(o.hostPath, o.containerPath);
  return copyOut(await vmExec(layout, log, o.name, io), o, place, io);
}

/** Runs a command in the guest OS of the VM `name` (waiting for one still starting). */
type GuestRun = (command: string[], stdin: Readable | undefined, more?: Partial<CopyIo>) => Promise<number>;

async function vmExec(layout: Layout, log: Logger, name: string, io: CopyIo): Promise<GuestRun> {
  const { state, socket } = await findRunningVm(layout, log, { name }, WAITS_FOR_START_MS);
  return async (command, stdin, more = {}) => {
    const req: ExecRequest = { target: 'vm', command, env: {}, workdir: undefined, user: undefined, interactive: stdin !== undefined, tty: false };
    // The guest's messages are podman's: kept, and told as one line of fcvm's if podman failed.
    const said = new BoundedText(GUEST_STDERR_MAX);
    const code = await execInVm(socket, `VM "${state.name}"`, req, { ...io, stderr: said.sink(), ...(stdin ? { stdin } : {}), ...more });
    const error = code !== 0 && !(more.interrupt ?? io.interrupt).aborted ? guestCpError(said.text(), state.name) : undefined;
    if (error) throw errors.copyFailed(error);
    io.stderr.write(said.text());
    return code;
  };
}

/** What of the guest's messages is kept. */
const GUEST_STDERR_MAX = 64 * 1024;

/** A Writable that keeps the first `max` bytes written to it. */
class BoundedText {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  sink(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        const room = this.max - this.size;
        if (room > 0) this.chunks.push(chunk.subarray(0, room));
        this.size += Math.min(room, chunk.length);
        done();
      },
    });
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/**
 * podman cp's error in the guest as one line for the host: its first error (podman lists
 * several after "N errors occurred:"), without the guest's scratch directory, with the
 * VM's name for the container's ID. Undefined if podman said no error. Pure.
 */
export function guestCpError(stderr: string, vm: string): string | undefined {
  const lines = stderr.split('\n').map((l) => l.trim());
  const at = lines.findIndex((l) => l.startsWith('Error: '));
  if (at < 0) return undefined;
  let msg = lines[at]!.slice('Error: '.length);
  if (/^\d+ errors occurred:$/.test(msg)) msg = lines.slice(at + 1).find((l) => l.startsWith('* '))?.slice(2) ?? msg;
  return msg.replace(/\/var\/tmp\/fcvm-cp\.[^/\s"]+\/?/g, '').replace(/\b[0-9a-f]{64}\b/g, vm);
}

/**
 * In: the stream is unpacked in a scratch directory on the guest's disk, and podman cp
 * takes it from there ("-" is all of the stream: its contents go into the path, as
 * podman cp - does; podman's own "-" opens /dev/stdin, which the guest has not).
 */
async function copyIn(run: GuestRun, o: CpOptions & { to: 'container' }, src: HostSource | undefined, io: CopyIo): Promise<number> {
  const flags = [...(o.archive ? [] : ['--archive=false']), ...(o.overwrite ? ['--overwrite'] : [])];
  const script = [
    WAIT_FOR_CONTAINER,
    'd=$(mktemp -d /var/tmp/fcvm-cp.XXXXXX) || exit 125',
    'trap \'rm -rf "$d"\' EXIT; trap \'exit 130\' INT TERM HUP',
    'tar -C "$d" -xf - || exit 125',
    'p=$1; n=$2; shift 2',
    'podman cp "$@" "$d/$n" "$c:$p"',
  ].join('\n');
  const inGuest = (stdin: Readable, name: string) => run(['sh', '-c', script, 'sh', o.containerPath, name, ...flags], stdin);
  if (!src) return inGuest(io.stdin, '.');
  const tar = spawn('tar', ['--numeric-owner', '-C', src.parent, '-cf', '-', '--', src.name], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tarFailed: string | undefined;
  tar.on('error', (e) => (tarFailed = e.message));
  tar.stderr.pipe(io.stderr, { end: false });
  // Taken at once: Node drops what an exited child's unread stdout still holds.
  const packed = tar.stdout.pipe(new PassThrough());
  const tarExit = new Promise<number>((r) => tar.on('close', (code) => r(code ?? 1)));
  const code = await inGuest(packed, src.name + src.suffix);
  // A guest that ended early reads no more: tar must not wait on a full pipe for ever.
  if (tar.exitCode === null) {
    packed.destroy();
    tar.kill('SIGTERM');
  }
  const tarCode = await tarExit;
  if (code === 0 && (tarCode !== 0 || tarFailed)) throw errors.copyFailed(`reading "${o.hostPath}" on the host failed (${tarFailed ?? `tar exited ${tarCode}`})`, 'See tar\'s message above');
  return code;
}

/** Out: the guest streams `podman cp CTR:SRC -`; the host unpacks it (or passes it to stdout for "-"). */
async function copyOut(run: GuestRun, o: CpOptions, place: Place | undefined, io: CopyIo): Promise<number> {
  const command = ['sh', '-c', `${WAIT_FOR_CONTAINER}; exec podman cp "$c:$0" -`, o.containerPath];
  if (!place) return run(command, undefined);
  const stop = new AbortController();
  const stream = new PassThrough();
  const extracted = extractGuestTar(stream, place, { overwrite: o.overwrite, refused: () => stop.abort('SIGTERM') });
  extracted.catch(() => {});
  const code = await run(command, undefined, { stdout: stream, interrupt: AbortSignal.any([io.interrupt, stop.signal]) });
  stream.end();
  if (code !== 0 && !stop.signal.aborted) return code; // a refusal of podman's was thrown already
  const { skipped } = await extracted;
  if (skipped > 0) io.stderr.write(`fcvm: cp: ${skipped} device node(s), FIFO(s) or socket(s) were not made on the host\n`);
  return 0;
}

interface HostSource {
  parent: string;
  name: string;
  suffix: string;
}

/** The host path to pack: its directory, its name, and "/." or "/" as it was written (undefined for "-"). */
async function sourceOnHost(hostPath: string): Promise<HostSource | undefined> {
  if (hostPath === '-') return undefined;
  const suffix = hostPath.endsWith('/.') ? '/.' : hostPath.endsWith('/') ? '/' : '';
  // podman follows a symbolic link given as the source.
  const real = await realpath(hostPath).catch((e: NodeJS.ErrnoException) => {
    throw errors.copyFailed(`"${hostPath}" ${e.code === 'ENOENT' ? 'does not exist' : `cannot be read (${e.code})`} on the host`);
  });
  if (real === '/') throw errors.copyFailed('copying the host\'s whole root is not supported', 'Name a directory under it');
  return { parent: dirname(real), name: basename(real), suffix };
}

/** Where a copy out lands, by podman cp's rules (undefined for "-": the stream goes to stdout). */
async function destinationOnHost(hostPath: string, containerPath: string): Promise<Place | undefined> {
  if (hostPath === '-') return undefined;
  const dest = resolve(hostPath);
  const contents = containerPath.endsWith('/.');
  const st = await stat(dest).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw errors.copyFailed(`"${hostPath}" cannot be used on the host (${e.code})`);
  });
  if (!st) {
    const parent: Stats | undefined = await stat(dirname(dest)).catch(() => undefined);
    if (!parent?.isDirectory()) throw errors.copyFailed(`the directory "${dirname(hostPath.replace(/\/+$/, '')) || '.'}" does not exist on the host`, 'Create it first, or copy to a directory that exists');
  }
  return ({ name, isDir }) => {
    if (st?.isDirectory()) return { base: dest, root: contents ? '' : name };
    if (st && isDir) throw errors.copyFailed(`cannot copy the directory "${name}" onto the file "${hostPath}"`, 'Give a directory, or a path that does not exist yet');
    if (!st && hostPath.endsWith('/') && !isDir) throw errors.copyFailed(`the directory "${hostPath}" does not exist on the host`, 'Create it first, or give a file name');
    return { base: dirname(dest), root: basename(dest) };
  };
}
