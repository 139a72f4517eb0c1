import { spawn, type ChildProcess } from 'node:child_process';
import type { CloneFlags } from '../options/clone-options.js';
import type { Logger } from '../util/log.js';
import { deadline } from '../util/proc.js';
import type { MemberMessage, PoolJob } from '../vm/pool-member.js';
import type { PoolNetwork } from '../vm/pool-network.js';

/** The hidden command each member runs as (cli/commands/pool-member.ts). */
const MEMBER_COMMAND = '__pool-member';

/** Members that fail before they are ready, one after another, before the pool stops refilling. */
const MAX_FAILED_STARTS = 3;

/** How long after a hand-out the refill waits at most for the handed-out clone to end. */
const REFILL_GRACE_MS = 2_000;

/** How long members get to stop when the pool ends, before SIGKILL. */
const MEMBER_STOP_MS = 30_000;

interface Member {
  child: ChildProcess;
  ready: boolean;
  taken: boolean;
  exited: Promise<number>;
  /** The member's last line on stderr: why it failed, if it did. */
  lastLine: string;
  messages: ((m: MemberMessage) => void)[];
}

export interface PoolOptions {
  size: number;
  network: PoolNetwork;
  servePid: number;
  /** The global flags members are started with (base dir, log level). */
  globalArgs: string[];
  log: Logger;
  say: (line: string) => void;
}

/** A handed-out clone: its name and run directory, and its supervisor's PID. */
export interface TakenClone {
  name: string;
  runDir: string;
  pid: number;
  member: Member;
}

/** The error a member reported when its hand-out failed. */
export class HandoutError extends Error {
  constructor(readonly code: string, message: string, readonly hint: string | undefined) {
    super(message);
  }
}

/**
 * `snapshot serve --pool N`: keeps N clones restored with their agents connected, each
 * a supervisor process of its own (the server's child), waiting to be handed out. One
 * member starts at a time, so the refill does not crowd out the clones that run.
 */
export class ClonePool {
  private readonly members = new Set<Member>();
  private stopping = false;
  private failedStarts = 0;
  private filling = false;

  constructor(private readonly o: PoolOptions) {}

  get network(): PoolNetwork {
    return this.o.network;
  }

  /** Members restored and waiting. */
  get ready(): number {
    return [...this.members].filter((m) => m.ready && !m.taken).length;
  }

  /** Fills the pool in the background, one member at a time, until it is full or gave up. */
  fill(): void {
    if (this.filling || this.stopping) return;
    this.filling = true;
    void this.fillLoop().finally(() => (this.filling = false));
  }

  private async fillLoop(): Promise<void> {
    while (!this.stopping && this.waiting() < this.o.size && this.failedStarts < MAX_FAILED_STARTS) {
      const m = this.spawnMember();
      const ok = await Promise.race([
        new Promise<boolean>((r) => m.messages.push((msg) => 'ready' in msg && r(true))),
        m.exited.then(() => false),
      ]);
      if (ok) {
        this.failedStarts = 0;
        this.o.say(`pool: ${this.ready} clone(s) ready`);
        continue;
      }
      if (this.stopping) return;
      this.failedStarts++;
      this.o.say(`pool: a clone failed to start${m.lastLine ? `: ${m.lastLine}` : ''}`);
      if (this.failedStarts >= MAX_FAILED_STARTS) this.o.say(`pool: ${MAX_FAILED_STARTS} clones in a row failed to start; not refilling (clones start without the pool)`);
    }
  }

  /** Members not handed out (ready or starting). */
  private waiting(): number {
    return [...this.members].filter((m) => !m.taken).length;
  }

  private spawnMember(): Member {
    const child = spawn(process.execPath, [...process.execArgv, '--', process.argv[1]!, ...this.o.globalArgs, MEMBER_COMMAND], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      cwd: '/',
    });
    const m: Member = {
      child,
      ready: false,
      taken: false,
      lastLine: '',
      messages: [],
      exited: new Promise((r) => child.once('close', (code, signal) => r(code ?? (signal ? 128 : 1)))),
    };
    this.members.add(m);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      const lines = d.split('\n').filter(Boolean);
      if (lines.length) m.lastLine = lines[lines.length - 1]!.replace(/^fcvm: /, '').slice(0, 300);
      this.o.log.debug({ member: child.pid, output: d.trimEnd() }, 'pool member');
    });
    child.on('message', (msg: MemberMessage) => {
      if (msg && 'ready' in msg) m.ready = true;
      for (const f of m.messages) f(msg);
    });
    child.on('error', (e) => (m.lastLine = e.message));
    void m.exited.then(() => {
      this.members.delete(m);
      // A waiting member that died is replaced.
      if (!m.taken && m.ready) this.fill();
    });
    const job: PoolJob = { servePid: this.o.servePid, network: this.o.network };
    child.send({ job });
    return m;
  }

  /**
   * Hands a ready member out with the clone's flags; resolves once it runs as that
   * clone, undefined when none is ready. A member that fails its hand-out is gone; the
   * pool refills either way.
   */
  async take(flags: CloneFlags): Promise<TakenClone | undefined> {
    const m = [...this.members].find((x) => x.ready && !x.taken && x.child.connected);
    if (!m) return undefined;
    m.taken = true;
    const answer = new Promise<MemberMessage | undefined>((r) => {
      m.messages.push((msg) => ('started' in msg || 'failed' in msg) && r(msg));
      void m.exited.then(() => r(undefined));
    });
    m.child.send({ handout: flags });
    const msg = await answer;
    // The refill starts once the clone handed out is done (an --exec) or has had a moment
    // to start its work: a restore beside it would take CPU from the very request the pool
    // is there to speed up.
    void Promise.race([m.exited, deadline(REFILL_GRACE_MS)]).then(() => this.fill());
    if (msg && 'started' in msg) return { ...msg.started, pid: m.child.pid!, member: m };
    if (msg && 'failed' in msg) throw new HandoutError(msg.failed.code, msg.failed.message, msg.failed.hint);
    throw new HandoutError('VMM_EXITED', `the pooled clone (pid ${m.child.pid}) ended while it was handed out${m.lastLine ? `: ${m.lastLine}` : ''}`, undefined);
  }

  /** Ends a handed-out clone at once (its --exec is done) and resolves once its supervisor is gone. */
  async release(t: TakenClone): Promise<void> {
    if (t.member.child.connected) t.member.child.send({ end: true });
    else t.member.child.kill('SIGTERM');
    await t.member.exited;
  }

  /** Stops the pool: its waiting members end; handed-out ones are the server's clones and end with them. */
  async stop(): Promise<void> {
    this.stopping = true;
    const waiting = [...this.members].filter((m) => !m.taken);
    for (const m of waiting) m.child.kill('SIGTERM');
    const all = Promise.all(waiting.map((m) => m.exited));
    if ((await Promise.race([all.then(() => true), deadline(MEMBER_STOP_MS).then(() => false)])) === false) {
      for (const m of waiting) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
      await all;
    }
  }
}
