import { randomBytes } from 'node:crypto';
import { errors } from '../errors/catalogue.js';
import type { AccelChoice } from '../vmm/accel.js';
import { parseChoice, parseCpus, parseEnv, parseMemory, splitCommand, validateName } from './parse.js';

export type HypervisorChoice = 'qemu' | 'firecracker' | 'auto';

/** Validated options of `fcvm podman run`. */
export interface RunOptions {
  name: string;
  image: string;
  /** Replaces the image's CMD when set. */
  command: string[] | undefined;
  env: Record<string, string>;
  privileged: boolean;
  vcpus: number;
  memoryMiB: number;
  hypervisor: HypervisorChoice;
  accel: AccelChoice;
  setup: boolean;
  bootTimeoutSeconds: number;
  stopGraceSeconds: number;
}

/** The raw flags as commander hands them over. */
export interface RunFlags {
  name?: string;
  cpu?: string;
  mem?: string;
  env?: string[];
  cmd?: string;
  privileged?: boolean;
  hypervisor?: string;
  accel?: string;
  setup?: boolean;
  bootTimeout?: string;
  stopTimeout?: string;
}

function positiveSeconds(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw errors.invalidOption(flag, v, 'not a positive number of seconds', `Give ${flag} in seconds, for example ${flag} 60`);
  return n;
}

/** Turns flags into validated options. Pure apart from the random default name. */
export function runOptionsFromFlags(image: string | undefined, args: readonly string[], flags: RunFlags, env: NodeJS.ProcessEnv = process.env): RunOptions {
  if (!image) throw errors.usage('no image given', 'Usage: fcvm podman run [options] IMAGE [-- COMMAND [ARG...]]');
  // "--" separates fcvm's options from the container command; it is not part of it.
  if (args[0] === '--') args = args.slice(1);
  if (flags.cmd !== undefined && args.length > 0) {
    throw errors.usage('both --cmd and a command after the image were given', 'Use one of them: --cmd "CMD ARGS" or IMAGE -- CMD ARGS');
  }
  let command: string[] | undefined = args.length > 0 ? [...args] : undefined;
  if (flags.cmd !== undefined) {
    command = splitCommand(flags.cmd);
    if (command.length === 0) throw errors.invalidOption('--cmd', flags.cmd, 'it is empty', 'Give a command, or leave --cmd out to run the image\'s CMD');
  }
  return {
    name: validateName(flags.name ?? `fcvm-${randomBytes(4).toString('hex')}`),
    image,
    command,
    env: parseEnv(flags.env ?? [], env),
    privileged: flags.privileged ?? false,
    vcpus: parseCpus(flags.cpu ?? '2'),
    memoryMiB: parseMemory(flags.mem ?? '512'),
    hypervisor: parseChoice('--hypervisor', flags.hypervisor ?? 'auto', ['qemu', 'firecracker', 'auto'] as const),
    accel: parseChoice('--accel', flags.accel ?? 'auto', ['auto', 'kvm', 'tcg'] as const),
    setup: flags.setup ?? false,
    bootTimeoutSeconds: positiveSeconds('--boot-timeout', flags.bootTimeout ?? '120'),
    stopGraceSeconds: positiveSeconds('--stop-timeout', flags.stopTimeout ?? '10'),
  };
}
