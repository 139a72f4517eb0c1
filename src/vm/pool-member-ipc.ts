import type { CloneFlags } from '../options/clone-options.js';
import type { MemberLink, MemberMessage, PoolJob, ServerMessage } from './pool-member.js';

/**
 * In a pool member: its job (the server's first message), and the link for the rest.
 * A hand-out comes once; anything else the server sends is ignored.
 */
export function memberLink(): Promise<{ job: PoolJob; link: MemberLink; handedOut: () => boolean }> {
  return new Promise((resolve, reject) => {
    let job: PoolJob | undefined;
    let handedOut = false;
    let giveFlags!: (f: CloneFlags) => void;
    let end!: () => void;
    let started = false;
    const handout = new Promise<CloneFlags>((r) => (giveFlags = r));
    const ended = new Promise<void>((r) => (end = r));
    const link: MemberLink = {
      send: (m: MemberMessage) => {
        if ('started' in m) started = true;
        if (process.connected) process.send!(m);
      },
      handout,
      ended,
    };
    process.on('message', (m: { job?: PoolJob } & Partial<Record<keyof ServerMessage | 'handout' | 'end', unknown>>) => {
      if (!job) {
        if (!m?.job || typeof m.job.servePid !== 'number') return reject(new Error('a pool member got no job'));
        job = m.job;
        return resolve({ job, link, handedOut: () => handedOut && !started });
      }
      if (m?.handout && !handedOut) {
        handedOut = true;
        giveFlags(m.handout as CloneFlags);
      } else if (m?.end) end();
    });
  });
}
