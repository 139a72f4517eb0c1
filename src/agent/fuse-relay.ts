/**
 * The guest side of volumes: fcvm-fuse-relay (assets/guest/fuse-relay/, a small static
 * C program in the initrd), started with the first volume and driven over its stdin
 * and stdout. It mounts each volume (mount(2) on /dev/fuse), relays the kernel's FUSE
 * messages to the host's server as frames, keeps each request until answered (to send
 * it again to a clone's new server, or answer EIO when the host is gone for good), and
 * answers a few requests itself from what the host told it.
 *
 * Why native: under emulation (TCG) every thread wake-up and every JavaScript hop of
 * Node costs hundreds of microseconds, and a volume request crosses the relay twice.
 *
 * Its channel is the fuse virtio-serial port, which it opens itself (QEMU), or a stream
 * socket whose other end this process holds (`pipe`: tests, where the end of the stream
 * is the host going away). Under Firecracker (vsock) a host session is a resumable
 * stream in the agent, not a byte device: volumes are not carried there yet.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Socket } from 'node:net';

export interface GuestVolume {
  index: number;
  /** Where the FUSE file system is mounted in the guest. */
  mountPoint: string;
  readOnly: boolean;
}

export type RelayChannel = { kind: 'port'; path: string } | { kind: 'pipe' };

/** Where setup puts the relay in the guest (the initrd's /fcvm, copied to /run/fcvm). */
export const GUEST_RELAY_PATH = '/run/fcvm/fuse-relay';

export class FuseRelay {
  private readonly child: ChildProcess;
  /** Callers waiting for an answer line, in the order their commands went out. */
  private readonly waiting: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  private exited: Error | undefined;

  constructor(binary: string, channel: RelayChannel, private readonly log: (line: string) => void = () => {}) {
    const args = channel.kind === 'port' ? ['--port', channel.path] : ['--fd', '3'];
    this.child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe', ...(channel.kind === 'pipe' ? ['pipe' as const] : [])] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.waiting.shift()?.resolve(line));
    createInterface({ input: this.child.stderr! }).on('line', (line) => log(line));
    this.child.on('error', (e) => this.fail(e));
    this.child.on('exit', (code, signal) => this.fail(new Error(`the fuse relay exited (${signal ?? `code ${code}`})`)));
  }

  private fail(e: Error): void {
    if (this.exited) return;
    this.exited = e;
    this.log(e.message);
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  private command(line: string): Promise<string> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin!.write(`${line}\n`);
    });
  }

  /** Mounts a volume (the relay ignores a second mount of one index). */
  async mount(v: GuestVolume): Promise<void> {
    if (/\s/.test(v.mountPoint)) throw new Error(`mount point ${JSON.stringify(v.mountPoint)} has white space`);
    const r = await this.command(`mount ${v.index} ${v.readOnly ? 1 : 0} ${v.mountPoint}`);
    if (r !== `ok ${v.index}`) throw new Error(r.replace(/^error -?\d+ /, ''));
  }

  /** A snapshot is being taken: until the next session, a lost host means a restore. */
  async arm(): Promise<void> {
    await this.command('arm');
  }

  async disarm(): Promise<void> {
    await this.command('disarm');
  }

  /** The relay's counters, one line ("stats NAME=VALUE ..."). */
  stats(): Promise<string> {
    return this.command('stats');
  }

  /** (`pipe` only) The relay's end of its stream socket, for a host in this process (tests). */
  get pipe(): Socket | undefined {
    return this.child.stdio[3] as Socket | undefined;
  }

  /** Unmounts every volume and ends the relay (tests; a guest keeps its mounts until power-off). */
  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
}
