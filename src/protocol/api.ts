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

/** An image HEALTHCHECK, from the image config. */
export const HealthcheckSchema = z.object({
  /** ["CMD-SHELL", "cmd"] or ["CMD", "arg0", ...]. */
  test: z.array(z.string()).min(2),
  intervalMs: z.number().int().positive(),
  timeoutMs: z.number().int().positive(),
  retries: z.number().int().positive(),
  startPeriodMs: z.number().int().nonnegative(),
});
export type Healthcheck = z.infer<typeof HealthcheckSchema>;

export const ContainerRunSchema = z.object({
  name: z.string(),
  image: ImageSourceSchema,
  /** Replaces the image's CMD when set. */
  command: z.array(z.string()).optional(),
  env: z.record(z.string(), z.string()),
  privileged: z.boolean(),
  cpus: z.number().positive(),
  memoryMiB: z.number().int().positive(),
  healthcheck: HealthcheckSchema.optional(),
  /** Channels the agent writes the container's stdout and stderr to. */
  stdoutChannel: z.number().int().positive(),
  stderrChannel: z.number().int().positive(),
});
export type ContainerRun = z.infer<typeof ContainerRunSchema>;

export const GuestNetSchema = z.object({
  address: z.string(),
  prefix: z.number().int().min(1).max(32),
  gateway: z.string(),
  dns: z.array(z.string()),
});
export type GuestNet = z.infer<typeof GuestNetSchema>;

export const VmConfigureSchema = z.object({
  hostname: z.string(),
  /** Host wall clock, ms since the epoch, so the guest clock is right. */
  clockMs: z.number(),
  /** The first NIC's address; absent with --network none. */
  network: GuestNetSchema.optional(),
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

export const HealthEventSchema = z.object({ status: z.enum(['healthy', 'unhealthy']), output: z.string().optional() });

export const EVENTS = {
  started: 'container.started',
  exited: 'container.exited',
  health: 'container.health',
} as const;

/** Error codes the agent reports, mapped to the host's catalogue by the host. */
export const AGENT_ERROR_CODES = ['BAD_REQUEST', 'IMAGE_LOAD_FAILED', 'IMAGE_PULL_FAILED', 'RUN_FAILED', 'BUSY', 'FAILED', 'UNSUPPORTED'] as const;

/** Opens a nested session (its own handshake, requests and channels) inside a channel. */
export const SessionOpenSchema = z.object({ channel: z.number().int().positive() });

export const ExecStartSchema = z.object({
  /** In the container (podman exec), or in the guest OS itself. */
  target: z.enum(['container', 'vm']),
  command: z.array(z.string()).min(1),
  env: z.record(z.string(), z.string()),
  workdir: z.string().optional(),
  user: z.string().optional(),
  tty: z.boolean(),
  cols: z.number().int().positive().optional(),
  rows: z.number().int().positive().optional(),
  /** Set when stdin is forwarded; the host ends the channel at EOF. */
  stdinChannel: z.number().int().positive().optional(),
  stdoutChannel: z.number().int().positive(),
  /** Absent with a TTY, where stderr is the terminal too. */
  stderrChannel: z.number().int().positive().optional(),
});
export type ExecStart = z.infer<typeof ExecStartSchema>;

export const ExecResizeSchema = z.object({ execId: z.string(), cols: z.number().int().positive(), rows: z.number().int().positive() });
export const ExecSignalSchema = z.object({ execId: z.string(), signal: z.enum(['SIGINT', 'SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGQUIT']) });
export const ExecExitedSchema = z.object({ execId: z.string(), exitCode: z.number().int() });

export const EXEC = {
  openSession: 'session.open',
  start: 'exec.start',
  resize: 'exec.resize',
  signal: 'exec.signal',
  exited: 'exec.exited',
} as const;
