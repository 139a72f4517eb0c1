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
});
export type VmState = z.infer<typeof VmStateSchema>;
