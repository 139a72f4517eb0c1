import * as z from 'zod/mini';

/**
 * The agent's API: method names, their params and results, and event payloads.
 * Shared by host and agent so both validate the same shapes.
 */

/** One registry's credentials, as podman's auth.json holds them. Never logged, never kept. */
export const PullAuthSchema = z.object({
  registry: z.string().check(z.minLength(1), z.maxLength(255)),
  auth: z.string().check(z.minLength(1), z.maxLength(8192)),
});
export type PullAuth = z.infer<typeof PullAuthSchema>;

/** A file of podman's --cert-dir: NAME.crt (a CA), NAME.cert and NAME.key (a client pair). */
export const CertFileSchema = z.object({
  name: z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.(crt|cert|key)$/)),
  pem: z.string().check(z.maxLength(65536)),
});
export type CertFile = z.infer<typeof CertFileSchema>;

/** Where the guest gets the image: a host-exported archive on a disk, or a registry pull. */
export const ImageSourceSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('archive'),
    /** The virtio-blk serial of the read-only disk holding the archive. */
    diskSerial: z.string().check(z.minLength(1), z.maxLength(20)),
    /** The image ID (config digest) the archive holds. */
    id: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
    /**
     * The name the user gave. A nested-profile guest tags the loaded image with it, so an
     * inner fcvm finds the image by the same name (the archive holds the ID only).
     */
    name: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
  }),
  z.object({
    kind: z.literal('pull'),
    ref: z.string().check(z.minLength(1)),
    /** false for a plain-HTTP registry or one whose certificate is not checked. */
    tlsVerify: z.optional(z.boolean()),
    /** Credentials for the image's registry, as an auth.json entry: base64 of "USER:PASS". */
    auth: z.optional(PullAuthSchema),
    /** CA and client certificates for the registry (podman's --cert-dir files). */
    certs: z.optional(z.array(CertFileSchema).check(z.maxLength(16))),
  }),
]);
export type ImageSource = z.infer<typeof ImageSourceSchema>;

/** An image HEALTHCHECK, from the image config. */
export const HealthcheckSchema = z.object({
  /** ["CMD-SHELL", "cmd"] or ["CMD", "arg0", ...]. */
  test: z.array(z.string()).check(z.minLength(2)),
  intervalMs: z.int().check(z.positive()),
  timeoutMs: z.int().check(z.positive()),
  retries: z.int().check(z.positive()),
  startPeriodMs: z.int().check(z.nonnegative()),
});
export type Healthcheck = z.infer<typeof HealthcheckSchema>;

/** A host directory the agent mounts (FUSE over the fuse channel) and binds into the container. */
export const VolumeSchema = z.object({
  /** The index the fuse channel's frames carry for this volume. */
  index: z.int().check(z.gte(0), z.lte(0xffff)),
  /** The path in the container. */
  guest: z.string().check(z.regex(/^\/[^,:]*$/)),
  readOnly: z.boolean(),
});
export type Volume = z.infer<typeof VolumeSchema>;

export const ContainerRunSchema = z.object({
  name: z.string(),
  image: ImageSourceSchema,
  /** Replaces the image's CMD when set. */
  command: z.optional(z.array(z.string())),
  env: z.record(z.string(), z.string()),
  privileged: z.boolean(),
  cpus: z.number().check(z.positive()),
  memoryMiB: z.int().check(z.positive()),
  healthcheck: z.optional(HealthcheckSchema),
  /** A pulled image: run its HEALTHCHECK, if it has one, with these fields over it (podman's --health-* flags). */
  imageHealth: z.optional(z.object({
    intervalMs: z.optional(z.int().check(z.positive())),
    timeoutMs: z.optional(z.int().check(z.positive())),
    retries: z.optional(z.int().check(z.positive())),
    startPeriodMs: z.optional(z.int().check(z.nonnegative())),
  })),
  /** Channels the agent writes the container's stdout and stderr to. */
  stdoutChannel: z.int().check(z.positive()),
  stderrChannel: z.int().check(z.positive()),
  /** podman run -t: the container gets a terminal; its output is one stream (stdout). */
  tty: z.optional(z.boolean()),
  /** The terminal's size at the start. */
  cols: z.optional(z.int().check(z.positive())),
  rows: z.optional(z.int().check(z.positive())),
  /** podman run -i: the container's stdin comes from this channel, ended at EOF. */
  stdinChannel: z.optional(z.int().check(z.positive())),
  workdir: z.optional(z.string().check(z.minLength(1))),
  user: z.optional(z.string().check(z.minLength(1))),
  /** podman's --entrypoint, verbatim: a command, or a JSON array; "" clears the image's. */
  entrypoint: z.optional(z.string()),
  hostname: z.optional(z.string().check(z.minLength(1))),
  labels: z.optional(z.record(z.string(), z.string())),
  /** podman run --init: a tiny init (catatonit) as PID 1 that forwards signals and reaps. */
  init: z.optional(z.boolean()),
  /** More of podman's run flags, each one word (--cap-drop=ALL), checked on the host. */
  podmanOptions: z.optional(z.array(z.string().check(z.regex(/^--[a-z][a-z-]*(=[^\0\n]*)?$/)))),
  volumes: z.optional(z.array(VolumeSchema)),
});
export type ContainerRun = z.infer<typeof ContainerRunSchema>;

export const GuestNetSchema = z.object({
  address: z.string(),
  prefix: z.int().check(z.gte(1), z.lte(32)),
  gateway: z.string(),
  dns: z.array(z.string()),
});
export type GuestNet = z.infer<typeof GuestNetSchema>;

export const VmConfigureSchema = z.object({
  hostname: z.string(),
  /** Host wall clock, ms since the epoch, so the guest clock is right. */
  clockMs: z.number(),
  /** The first NIC's address; absent with --network none. */
  network: z.optional(GuestNetSchema),
});
export type VmConfigure = z.infer<typeof VmConfigureSchema>;

export const ContainerStopSchema = z.object({ graceSeconds: z.number().check(z.nonnegative()) });

/** `fcvm kill`: a signal for the container's main process, by its name (SIGUSR1). */
export const SIGNAL_NAME = /^SIG[A-Z0-9]{2,8}$/;
export const ContainerKillSchema = z.object({ signal: z.string().check(z.regex(SIGNAL_NAME)) });

export const ContainerResizeSchema = z.object({ cols: z.int().check(z.positive()), rows: z.int().check(z.positive()) });

/** An exit code as a process has one (podman's are 0-255): a guest that says otherwise is not believed. */
const ExitCode = z.int().check(z.gte(0), z.lte(255));

export const ContainerStateSchema = z.object({
  state: z.enum(['none', 'preparing', 'running', 'exited']),
  exitCode: z.optional(ExitCode),
  pid: z.optional(z.int()),
});
export type ContainerState = z.infer<typeof ContainerStateSchema>;

/** `healthcheck`: the container's health checks run (so it is not healthy until one passes). */
export const StartedEventSchema = z.object({ pid: z.optional(z.int()), healthcheck: z.optional(z.boolean()) });
export const ExitedEventSchema = z.object({ exitCode: ExitCode });
/** Sent to a snapshot's source once it runs again; its clock stood still while it was paused. */
export const VmSnapshotDoneSchema = z.object({
  /** Host wall clock, ms since the epoch (absent from an older fcvm). */
  clockMs: z.optional(z.number()),
});

/** Sent to a clone right after its restore: what changed since the snapshot. */
export const VmRestoredSchema = z.object({
  hostname: z.string(),
  clockMs: z.number(),
  /** Fresh randomness from the host, base64: every clone must diverge from the others. */
  entropy: z.string().check(z.minLength(16)),
  /** Set when the clone's network differs from its source's. */
  network: z.optional(GuestNetSchema),
});
export type VmRestored = z.infer<typeof VmRestoredSchema>;

/** The container as a restored agent has it, with the channels its output goes to. */
export const RestoredResultSchema = z.object({
  container: ContainerStateSchema,
  stdoutChannel: z.optional(z.int()),
  stderrChannel: z.optional(z.int()),
  /** Set when the container was started with -i: the host writes its stdin here. */
  stdinChannel: z.optional(z.int()),
  /** Set when the container has a terminal (-t). */
  tty: z.optional(z.boolean()),
  /** The last HEALTHCHECK verdict, which the agent reports only when it changes. */
  health: z.optional(z.enum(['healthy', 'unhealthy'])),
});
export type RestoredResult = z.infer<typeof RestoredResultSchema>;

export const MemoryTrimResultSchema = z.object({ reporting: z.boolean() });

export const METHODS = {
  configure: 'vm.configure',
  run: 'container.run',
  stop: 'container.stop',
  status: 'container.status',
  /** The terminal of a container started with -t changed size. */
  resize: 'container.resize',
  /** `fcvm kill`: a signal to the container's main process, as podman kill. */
  kill: 'container.kill',
  /**
   * Before a snapshot (well before its pause): the guest drops its clean caches and
   * reports its free pages to the VMM page by page (src/agent/memory-trim.ts).
   */
  memoryTrim: 'vm.memory-trim',
  /** Before a snapshot: the agent gets ready to start a new session at SYNC. */
  snapshotPrepare: 'vm.snapshot-prepare',
  /** After a snapshot, in the source: back to normal. */
  snapshotDone: 'vm.snapshot-done',
  restored: 'vm.restored',
  /** Before a startup snapshot: load the image (params: an ImageSource), so restores find it loaded. */
  prepareImage: 'image.prepare',
  /** The agent asks the host: its wall clock now (HostClockSchema), to set the guest's to. */
  hostClock: 'host.clock',
} as const;

/** The host's answer to METHODS.hostClock: its wall clock, ms since the epoch. */
export const HostClockSchema = z.object({ clockMs: z.number() });

export const HealthEventSchema = z.object({ status: z.enum(['healthy', 'unhealthy']), output: z.optional(z.string()) });

export const EVENTS = {
  started: 'container.started',
  exited: 'container.exited',
  health: 'container.health',
} as const;

/** Error codes the agent reports, mapped to the host's catalogue by the host. */
export const AGENT_ERROR_CODES = ['BAD_REQUEST', 'IMAGE_LOAD_FAILED', 'IMAGE_PULL_FAILED', 'RUN_FAILED', 'BUSY', 'FAILED', 'UNSUPPORTED'] as const;

/** Opens a nested session (its own handshake, requests and channels) inside a channel. */
export const SessionOpenSchema = z.object({ channel: z.int().check(z.positive()) });

export const ExecStartSchema = z.object({
  /** In the container (podman exec), or in the guest OS itself. */
  target: z.enum(['container', 'vm']),
  command: z.array(z.string()).check(z.minLength(1)),
  env: z.record(z.string(), z.string()),
  workdir: z.optional(z.string()),
  user: z.optional(z.string()),
  tty: z.boolean(),
  cols: z.optional(z.int().check(z.positive())),
  rows: z.optional(z.int().check(z.positive())),
  /** Set when stdin is forwarded; the host ends the channel at EOF. */
  stdinChannel: z.optional(z.int().check(z.positive())),
  stdoutChannel: z.int().check(z.positive()),
  /** Absent with a TTY, where stderr is the terminal too. */
  stderrChannel: z.optional(z.int().check(z.positive())),
});
export type ExecStart = z.infer<typeof ExecStartSchema>;

export const ExecResizeSchema = z.object({ execId: z.string(), cols: z.int().check(z.positive()), rows: z.int().check(z.positive()) });
export const ExecSignalSchema = z.object({ execId: z.string(), signal: z.enum(['SIGINT', 'SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGQUIT', 'SIGPIPE']) });
export const ExecExitedSchema = z.object({ execId: z.string(), exitCode: ExitCode });

export const EXEC = {
  openSession: 'session.open',
  start: 'exec.start',
  resize: 'exec.resize',
  signal: 'exec.signal',
  exited: 'exec.exited',
} as const;
