import { Command } from 'commander';
import { withInterrupts } from '../interrupts.js';
import type { CommandHost } from '../command-host.js';
import { toFcvmError } from '../render-error.js';
import { detachStdio } from '../../util/stdio-errors.js';

/** The hidden command a memory server starts each pooled clone as (see snapshot/pool.ts). */
export const POOL_MEMBER_COMMAND = '__pool-member';

/** `__pool-member`: one pooled clone, the child of its server, which talks to it over IPC only. */
export function poolMemberCommand(host: CommandHost): Command {
  return new Command(POOL_MEMBER_COMMAND)
    .description('(internal) a pooled clone of a memory server')
    .action(async () => {
      // The server's pipe may go at any moment: writes there must not kill the clone.
      detachStdio();
      if (!process.send) throw new Error(`${POOL_MEMBER_COMMAND} is started by "fcvm snapshot serve --pool", not by hand`);
      const { memberLink } = await import('../../vm/pool-member-ipc.js');
      const { runPoolMember } = await import('../../vm/pool-member.js');
      const { job, link, handedOut } = await memberLink();
      const ctx = host.context();
      const detached = (log: { write(s: string): unknown }) => host.diagnostics.switchTo(log);
      try {
        host.setExitCode(await withInterrupts((signal) => {
          // The server gone (its IPC channel closed) ends the clone like a SIGTERM.
          const ac = new AbortController();
          const end = (why: string) => !ac.signal.aborted && ac.abort(why);
          signal.addEventListener('abort', () => end(String(signal.reason)), { once: true });
          process.once('disconnect', () => end('SIGTERM'));
          return runPoolMember(job, link, { layout: ctx.layout, log: ctx.log, out: host.diagnostics, interrupt: ac.signal, detached });
        }));
      } catch (e) {
        // Handed out but not started: the server relays why to the clone's requester.
        if (handedOut() && process.connected) {
          const err = toFcvmError(e);
          link.send({ failed: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) } });
        }
        throw e;
      } finally {
        if (process.connected) process.disconnect();
      }
    });
}
