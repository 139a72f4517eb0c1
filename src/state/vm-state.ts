import * as z from 'zod/mini';
import { JailStateSchema } from '../jail/jail-state.js';

export const STATE_SCHEMA = 1;

export const VmStatusSchema = z.enum(['starting', 'running', 'healthy', 'unhealthy', 'stopping', 'stopped']);
export type VmStatus = z.infer<typeof VmStatusSchema>;

/** The container's side of a run, as recorded for "fcvm inspect". */
export const RunPlanRecordSchema = z.object({
  command: z.optional(z.array(z.string())),
  entrypoint: z.optional(z.string()),
  envNames: z.array(z.string()),
  workdir: z.optional(z.string()),
  user: z.optional(z.string()),
  hostname: z.optional(z.string()),
  init: z.boolean(),
  tty: z.boolean(),
  interactive: z.boolean(),
  privileged: z.boolean(),
  /** podman's other run flags as the guest's podman got them (--read-only, --cap-drop=ALL, ...). */
  podmanOptions: z.optional(z.array(z.string())),
  /** The container's grace period on a stop (--stop-timeout). */
  stopTimeout: z.optional(z.number()),
  pull: z.object({
    policy: z.enum(['always', 'missing', 'never']),
    tlsVerify: z.boolean(),
    certDir: z.optional(z.string()),
    /** Where credentials came from, if any; never the credentials. */
    credentials: z.optional(z.enum(['creds', 'authfile'])),
  }),
});
export type RunPlanRecord = z.infer<typeof RunPlanRecordSchema>;

/** One VM's state file. The supervisor's PID plus its start time identify the owner. */
export const VmStateSchema = z.object({
  schema: z.literal(STATE_SCHEMA),
  name: z.string(),
  id: z.string(),
  /** The fcvm supervisor process that owns the VM. */
  pid: z.int(),
  pidStartTime: z.int(),
  vmmPid: z.optional(z.int()),
  status: VmStatusSchema,
  image: z.string(),
  hypervisor: z.enum(['qemu', 'firecracker']),
  accel: z.optional(z.enum(['kvm', 'tcg'])),
  /** The VMM's own word on KVM (QMP query-kvm), when it gives one. */
  kvm: z.optional(z.object({ enabled: z.boolean(), present: z.boolean() })),
  vcpus: z.int(),
  memoryMiB: z.int(),
  runDir: z.string(),
  createdAt: z.string(),
  exitCode: z.optional(z.int()),
  /** The allocation index of the VM's addresses (subnet, loopback). */
  netIndex: z.int().check(z.nonnegative()),
  network: z.object({
    mode: z.enum(['bridged', 'rootless', 'none']),
    guestIp: z.optional(z.string()),
    /** The VM's own loopback address on the host. */
    loopback: z.string(),
    /** How the host reaches the guest: the namespace's veth address, or the loopback. */
    hostPath: z.optional(z.string()),
    netns: z.optional(z.string()),
    publish: z.array(z.object({ hostIp: z.string(), hostPort: z.int(), guestPort: z.int(), proto: z.enum(['tcp', 'udp']) })),
  }),
  /** Host directories mapped into the container (--map). */
  volumes: z.optional(z.array(z.object({ host: z.string(), guest: z.string(), readOnly: z.boolean() }))),
  /** Set for a clone: its snapshot, and the memory server it runs from (if any). */
  clone: z.optional(z.object({ tag: z.string(), servePid: z.optional(z.int()) })),
  /** Set for a `podman run` that restored a startup snapshot: its tag. */
  startupSnapshot: z.optional(z.string()),
  /** The VMM's jail: its identity, namespaces and cgroup. */
  jail: z.optional(JailStateSchema),
  /** --label KEY=VALUE, for "fcvm ls --filter label=..." */
  labels: z.optional(z.record(z.string(), z.string())),
  /**
   * What the container runs with, for "fcvm inspect". Never the registry's credentials,
   * and only the names of environment variables: the file is readable by others.
   */
  plan: z.optional(RunPlanRecordSchema),
  /** Set when the supervisor runs detached (-d). */
  detached: z.optional(z.boolean()),
  /** The VM's log, and whether it (and a record of the VM, src/state/ended.ts) is kept after the VM ends: not with --rm. */
  log: z.optional(z.object({ path: z.string(), keep: z.boolean() })),
  /** Every status change with its time, oldest first. */
  transitions: z._default(z.array(z.object({ status: VmStatusSchema, at: z.string(), detail: z.optional(z.string()) })), []),
});
export type VmState = z.infer<typeof VmStateSchema>;

/** Transitions kept in a state file: the first, and the latest ones (a flapping health check must not grow it). */
export const MAX_TRANSITIONS = 64;

/** The state with `status` changed and the change recorded. Pure. */
export function withStatus(s: VmState, status: VmStatus, detail?: string, at = new Date()): VmState {
  if (s.status === status && !detail) return s;
  const all = [...s.transitions, { status, at: at.toISOString(), ...(detail ? { detail } : {}) }];
  const transitions = all.length > MAX_TRANSITIONS ? [all[0]!, ...all.slice(all.length - MAX_TRANSITIONS + 1)] : all;
  return { ...s, status, transitions };
}
