import type { Command } from 'commander';
import { LOG_LEVELS } from '../util/log.js';
import type { CompletionNode, ValueKind } from './engine.js';

/** Values of options, by long flag. */
const OPTION_VALUES: Record<string, ValueKind> = {
  '--network': { kind: 'choices', values: ['bridged', 'rootless', 'none'] },
  '--hypervisor': { kind: 'choices', values: ['qemu', 'firecracker', 'auto'] },
  '--accel': { kind: 'choices', values: ['auto', 'kvm', 'tcg'] },
  '--pull': { kind: 'choices', values: ['always', 'missing', 'never'] },
  '--log-level': { kind: 'choices', values: LOG_LEVELS },
  '--env-file': { kind: 'files' },
  '--authfile': { kind: 'files' },
  '--cert-dir': { kind: 'dirs' },
  // HOST:GUEST: the host directory comes first.
  '--map': { kind: 'dirs' },
  '--volume': { kind: 'dirs' },
  '--base-dir': { kind: 'dirs' },
  '--snapshot': { kind: 'tags' },
};

const VMS: ValueKind = { kind: 'vms' };
const TAGS: ValueKind = { kind: 'tags' };
/** What ps -a lists: inspect, logs, rm and wait also take a VM that ended. */
const KEPT: ValueKind = { kind: 'kept' };

/** Positional arguments, by command path ("snapshot create"). */
const POSITIONALS: Record<string, { kinds: ValueKind[]; variadic?: boolean; restAfter?: number }> = {
  exec: { kinds: [VMS], restAfter: 1 },
  stop: { kinds: [VMS], variadic: true },
  inspect: { kinds: [KEPT], variadic: true },
  logs: { kinds: [KEPT], variadic: true },
  'snapshot create': { kinds: [VMS] },
  'snapshot serve': { kinds: [TAGS] },
  'snapshots delete': { kinds: [TAGS] },
  'podman run': { kinds: [{ kind: 'images' }], restAfter: 1 },
  rm: { kinds: [KEPT], variadic: true },
  wait: { kinds: [KEPT], variadic: true },
  kill: { kinds: [VMS], variadic: true },
  port: { kinds: [VMS] },
  'podman exec': { kinds: [VMS], restAfter: 1 },
  'podman stop': { kinds: [VMS], variadic: true },
  'podman rm': { kinds: [KEPT], variadic: true },
  'podman wait': { kinds: [KEPT], variadic: true },
  'podman kill': { kinds: [VMS], variadic: true },
  // NAME:PATH or a host path: the host's files are what completion can list.
  cp: { kinds: [{ kind: 'files' }, { kind: 'files' }] },
  'podman cp': { kinds: [{ kind: 'files' }, { kind: 'files' }] },
  'podman port': { kinds: [VMS] },
  'podman inspect': { kinds: [KEPT], variadic: true },
  'podman logs': { kinds: [KEPT] },
  completion: { kinds: [{ kind: 'choices', values: ['bash', 'zsh', 'fish'] }] },
};

/** The completion tree of a commander program: visible commands and options only. */
export function fromCommander(cmd: Command, path: string[] = []): CompletionNode {
  const options = cmd.options
    .filter((o) => !o.hidden)
    // Commander marks a value optional when its placeholder merely contains "[" (<HOST:GUEST[:ro]>): "<" wins.
    .map((o) => ({ flags: [o.short, o.long].filter((f): f is string => Boolean(f)), takesValue: o.required || o.optional, optionalValue: o.optional && !o.required }));
  // Help is -h and --help, but where -h is an option of the command's own (podman run's --hostname).
  options.push({ flags: ['-h', '--help'].filter((f) => !options.some((o) => o.flags.includes(f))), takesValue: false, optionalValue: false });
  const subcommands = cmd.commands
    .filter((c) => !(c as unknown as { _hidden?: boolean })._hidden)
    .map((c) => fromCommander(c, [...path, c.name()]));
  const pos = POSITIONALS[path.join(' ')];
  return {
    names: [cmd.name(), ...cmd.aliases()],
    options,
    subcommands,
    positionals: pos?.kinds ?? [],
    variadic: pos?.variadic ?? false,
    restAfter: pos?.restAfter,
    valueOf: (flag) => {
      const o = cmd.options.find((x) => x.short === flag || x.long === flag);
      return (o?.long && OPTION_VALUES[o.long]) || (o?.argChoices ? { kind: 'choices', values: o.argChoices } : { kind: 'none' });
    },
  };
}
