import { spawn } from 'node:child_process';
import type { CloneFlags } from '../options/clone-options.js';
import type { RunOptions } from '../options/run-options.js';
import type { TextSink } from './output.js';

/** The hidden command a detached supervisor runs as. */
export const SUPERVISE_COMMAND = '__supervise';

/** What a detached supervisor is to run. It travels over an IPC pipe: never argv or env, which others can read. */
export type DetachedJob = { kind: 'run'; opts: RunOptions } | { kind: 'clone'; flags: CloneFlags };

/** The job as JSON-safe data (a health-check URL as its text). Pure. */
export function encodeJob(job: DetachedJob): object {
  if (job.kind === 'clone') return job;
  const hc = job.opts.healthCheck;
  return { kind: 'run', opts: { ...job.opts, healthCheck: hc ? { ...hc, url: hc.url.href } : undefined } };
}

/** The inverse of encodeJob. Pure. */
export function decodeJob(data: unknown): DetachedJob {
  const job = data as { kind: string; opts?: RunOptions & { healthCheck?: { url: string; timeoutSeconds: number } }; flags?: CloneFlags };
  if (job?.kind === 'clone' && job.flags) return { kind: 'clone', flags: job.flags };
  if (job?.kind !== 'run' || !job.opts) throw new Error('a detached supervisor got no job');
  const hc = job.opts.healthCheck;
  return { kind: 'run', opts: { ...job.opts, healthCheck: hc ? { url: new URL(hc.url), timeoutSeconds: hc.timeoutSeconds } : undefined } as RunOptions };
}

interface StartedMessage {
  started: string;
}

/**
 * `-d`: starts a supervisor for `job` in a session of its own and returns once its VM
 * is starting (its name is claimed and its log open), with the VM's name. A failure
 * before that (a bad image, a taken name) is relayed on `stderr` with the supervisor's
 * exit code, as if the run had not been detached.
 */
export function launchDetached(job: DetachedJob, globalArgs: string[], stderr: TextSink, interrupt: AbortSignal): Promise<{ name: string } | { exitCode: number }> {
  const child = spawn(process.execPath, [...process.execArgv, '--', process.argv[1]!, ...globalArgs, SUPERVISE_COMMAND], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    cwd: '/',
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => stderr.write(d));
  child.send(encodeJob(job) as Parameters<typeof child.send>[0]);
  return new Promise((resolve) => {
    // Our own child, not yet reaped: its PID cannot have been reused.
    const onAbort = () => child.kill('SIGTERM');
    interrupt.addEventListener('abort', onAbort, { once: true });
    child.on('message', (m: StartedMessage) => {
      if (typeof m?.started !== 'string') return;
      interrupt.removeEventListener('abort', onAbort);
      child.stderr!.destroy();
      child.disconnect();
      child.unref();
      resolve({ name: m.started });
    });
    child.on('close', (code, signal) => {
      interrupt.removeEventListener('abort', onAbort);
      resolve({ exitCode: code ?? (signal ? 128 + 15 : 125) });
    });
  });
}

/** In the detached supervisor: the job its launcher sent. */
export function receiveJob(): Promise<DetachedJob> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error(`${SUPERVISE_COMMAND} is started by "fcvm podman run -d", not by hand`));
    process.once('message', (m) => {
      try {
        resolve(decodeJob(m));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** In the detached supervisor: tells the launcher the VM is starting, and lets go of it. */
export function reportStarted(name: string): void {
  // The launcher may be gone (killed); the run goes on regardless.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  if (!process.connected) return;
  process.send!({ started: name } satisfies StartedMessage, () => {
    if (process.connected) process.disconnect();
  });
}
