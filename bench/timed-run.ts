/**
 * Running a program to completion for a bench: exit code, wall time from spawn to exit,
 * and its output (stdout, stderr, and both as they came).
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export interface Ran {
  code: number | null;
  ms: number;
  out: string;
  err: string;
  /** stdout and stderr interleaved as they arrived, for error messages. */
  all: string;
}

/** The fcvm CLI of this checkout. */
export const FCVM_CLI = resolve('dist/fcvm.mjs');

export function timedRun(cmd: string, args: string[]): Promise<Ran> {
  return new Promise((res) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let all = '';
    p.stdout.on('data', (d) => ((out += d), (all += d)));
    p.stderr.on('data', (d) => ((err += d), (all += d)));
    p.on('exit', (code) => res({ code, ms: performance.now() - t0, out, err, all }));
  });
}

/** Runs this checkout's fcvm with `args`. */
export const runFcvm = (args: string[]): Promise<Ran> => timedRun(process.execPath, [FCVM_CLI, ...args]);
