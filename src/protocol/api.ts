import { z } from 'zod';

/**
 * The agent's API: method names, their params and results, and event payloads.
 * Shared by host and agent so both validate the same shapes.
 */

/** Where the guest gets the image: a host-exported archive on a disk, or a registry pull. */
export const ImageSourceSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('archive'),
    /** The virtio-blk serial of the read-only disk holding the archive. */
    diskSerial: z.string().min(1).max(20),
    /** The image ID (config digest) the archive holds. */
    id: z.string().regex(/^[0-9a-f]{64}$/),
  }),
  z.object({ kind: z.literal('pull'), ref: z.string().min(1) }),
]);

export const ContainerRunSchema = z.object({
  name: z.string(),
  image: ImageSourceSchema,
  /** Replaces the image's CMD when set. */
  command: z.array(z.string()).optional(),
  env: z.record(z.string(), z.string()),
  privileged: z.boolean(),
  cpus: z.number().positive(),
  memoryMiB: z.number().int().positive(),
  /** Channels the agent writes the container's stdout and stderr to. */
  stdoutChannel: z.number().int().positive(),
  stderrChannel: z.number().int().positive(),
});
export type ContainerRun = z.infer<typeof ContainerRunSchema>;

export const VmConfigureSchema = z.object({
  hostname: z.string(),
  /** Host wall clock, ms since the epoch, so the guest clock is right. */
  clockMs: z.number(),
});
export type VmConfigure = z.infer<typeof VmConfigureSchema>;

export const ContainerStopSchema = z.object({ graceSeconds: z.number().nonnegative() });

export const ContainerStateSchema = z.object({
  state: z.enum(['none', 'preparing', 'running', 'exited']),
  exitCode: z.number().int().optional(),
  pid: z.number().int().optional(),
});
export type ContainerState = z.infer<typeof ContainerStateSchema>;

export const StartedEventSchema = z.object({ pid: z.number().int().optional() });
export const ExitedEventSchema = z.object({ exitCode: z.number().int() });

export const METHODS = {
  configure: 'vm.configure',
  run: 'container.run',
  stop: 'container.stop',
  status: 'container.status',
} as const;

export const EVENTS = {
  started: 'container.started',
  exited: 'container.exited',
} as const;

/** Error codes the agent reports, mapped to the host's catalogue by the host. */
export const AGENT_ERROR_CODES = ['BAD_REQUEST', 'IMAGE_LOAD_FAILED', 'IMAGE_PULL_FAILED', 'RUN_FAILED', 'BUSY', 'FAILED', 'UNSUPPORTED'] as const;
