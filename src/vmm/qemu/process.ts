import { spawn, type ChildProcess } from 'node:child_process';
import { deadline } from '../../util/proc.js';
export { signalFromShellCode } from '../../util/proc.js';
import type { VmExit } from '../driver.js';

/** A started VMM process: its PID (QEMU's own, also when jailed), its end, and its last words. */
export interface VmmProcess {
  readonly pid: number;
  readonly exited: Promise<VmExit>;
  /** SIGKILL, unless it has exited. */
  kill(): void;
  /** The last line QEMU (or its launcher) wrote to stderr, once it exited or 200 ms passed. */
  lastError(): Promise<string | undefined>;
}

/** Follows a launched child: its exit (mapped by `mapExit`) and a tail of its stderr. */
export function follow(child: ChildProcess, mapExit: (x: VmExit) => VmExit = (x) => x): { exited: Promise<VmExit>; done: () => boolean; lastError: () => Promise<string | undefined> } {
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  let finished = false;
  const exited = new Promise<VmExit>((resolve) => {
    child.on('exit', (code, signal) => {
      finished = true;
      resolve(mapExit({ code, signal }));
    });
    child.on('error', (e) => {
      stderr += e.message;
      finished = true;
      resolve({ code: 127, signal: null });
    });
  });
  return {
    exited,
    done: () => finished,
    lastError: async () => {
      await Promise.race([exited, deadline(200)]);
      return stderr.trim().split('\n').filter(Boolean).pop();
    },
  };
}

/**
 * QEMU without a jail (--no-jail): root, every capability, the host's namespaces but
 * the VM's network namespace. setpriv's pdeathsig makes the kernel kill it if fcvm dies.
 */
export function spawnUnjailed(qemu: string, args: readonly string[], netns: string | undefined, setprivExtra: readonly string[] = []): VmmProcess {
  const ns = netns ? ['nsenter', `--net=/run/netns/${netns}`, '--'] : [];
  const child = spawn('setpriv', [...setprivExtra, '--pdeathsig', 'KILL', '--', ...ns, qemu, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const f = follow(child);
  return { pid: child.pid ?? -1, exited: f.exited, lastError: f.lastError, kill: () => void (f.done() || child.kill('SIGKILL')) };
}

