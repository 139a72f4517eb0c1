import { z } from 'zod';

export const STATE_SCHEMA = 1;

export const VmStatusSchema = z.enum(['starting', 'running', 'healthy', 'unhealthy', 'stopping', 'stopped']);
export type VmStatus = z.infer<typeof VmStatusSchema>;

/** One VM's state file. The supervisor's PID plus its start time identify the owner. */
export const VmStateSchema = z.object({
  schema: z.literal(STATE_SCHEMA),
  name: z.string(),
  id: z.string(),
  /** The fcvm supervisor process that owns the VM. */
  pid: z.number().int(),
  pidStartTime: z.number().int(),
  vmmPid: z.number().int().optional(),
  status: VmStatusSchema,
  image: z.string(),
  hypervisor: z.enum(['qemu', 'firecracker']),
  accel: z.enum(['kvm', 'tcg']).optional(),
  vcpus: z.number().int(),
  memoryMiB: z.number().int(),
  runDir: z.string(),
  createdAt: z.string(),
  exitCode: z.number().int().optional(),
  /** The allocation index of the VM's addresses (subnet, loopback). */
  netIndex: z.number().int().nonnegative(),
  network: z.object({
    mode: z.enum(['bridged', 'rootless', 'none']),
    guestIp: z.string().optional(),
    /** The VM's own loopback address on the host. */
    loopback: z.string(),
    /** How the host reaches the guest: the namespace's veth address, or the loopback. */
    hostPath: z.string().optional(),
    netns: z.string().optional(),
    publish: z.array(z.object({ hostIp: z.string(), hostPort: z.number().int(), guestPort: z.number().int(), proto: z.enum(['tcp', 'udp']) })),
  }),
  /** Every status change with its time, oldest first. */
  transitions: z.array(z.object({ status: VmStatusSchema, at: z.string(), detail: z.string().optional() })).default([]),
});
export type VmState = z.infer<typeof VmStateSchema>;

/** The state with `status` changed and the change recorded. Pure. */
export function withStatus(s: VmState, status: VmStatus, detail?: string, at = new Date()): VmState {
  if (s.status === status && !detail) return s;
  return { ...s, status, transitions: [...s.transitions, { status, at: at.toISOString(), ...(detail ? { detail } : {}) }] };
}
