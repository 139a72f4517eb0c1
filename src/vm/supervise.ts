import { constants as osConstants } from 'node:os';
import { errors } from '../errors/catalogue.js';
import { isFcvmError } from '../errors/fcvm-error.js';
import { EVENTS, ExitedEventSchema, HealthEventSchema, METHODS, StartedEventSchema, type ContainerRun } from '../protocol/api.js';
import { RemoteError } from '../protocol/connection.js';
import { ProtocolError } from '../protocol/codec.js';
import { withStatus, type VmState, type VmStatus } from '../state/vm-state.js';
import { LatestWriter } from '../util/latest-writer.js';
import type { HealthOverride } from '../protocol/healthcheck.js';
import { deadline } from '../util/proc.js';
import { consoleTail } from '../vmm/console.js';
import { wireContainerIo } from './container-io.js';
import { describePullFailure } from '../images/pull-failure.js';
import { startHttpHealth } from './http-health.js';
import { describeExit, exitCodeForSignal, imageSource, interrupted, vmStoppedError, type Ctx } from './run-context.js';
import { readerIsGone } from '../util/stdio-errors.js';
import { EXIT_MARK } from '../logs/read-log.js';

/** How long a container whose output's reader went away has before it is killed, as `fcvm exec`'s. */
const READER_GONE_GRACE_S = 2;

/**
 * Starts the container (or, in a clone, takes over the one its snapshot holds) and
 * waits for its exit, a signal, or the VM's death.
 */
export async function superviseContainer(c: Ctx): Promise<number> {
  const { conn, env } = c;
  const { out, err, input, size, drained } = wireContainerIo(c);

  let exitSeen = false;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  // Only the latest state is written, in order; once stopping or stopped, only the final
  // 'stopped' may follow (late health results must not overwrite it).
  const writes = new LatestWriter<VmState>((s) => c.store.update(s));
  const setStatus = (status: VmStatus, detail?: string) => {
    if (c.state.status === 'stopped' || (c.state.status === 'stopping' && status !== 'stopped')) return;
    c.state = withStatus(c.state, status, detail);
    writes.push(c.state);
  };
  let resolveStarted!: () => void;
  const started = new Promise<void>((r) => (resolveStarted = r));
  let startSeen = false;
  const onStarted = (pid: number | undefined, guestHealth = false) => {
    // A guest may say so more than once; the container starts once.
    if (startSeen) return;
    startSeen = true;
    resolveStarted();
    env.log.debug({ pid }, 'container started');
    // Without a HEALTHCHECK or --health-check, a started container is a healthy one.
    const hc = c.opts.healthCheck;
    setStatus(c.image.healthcheck || hc || guestHealth ? 'running' : 'healthy');
    if (hc && c.state.network.hostPath) {
      const stop = startHttpHealth(hc.url, c.state.network.hostPath, hc.timeoutSeconds * 1000, (status) => {
        setStatus(status, `HTTP ${hc.url.href}`);
      });
      c.cleanup.push('stop HTTP health checks', stop);
    }
  };
  const onEvent = (name: string, data: unknown) => {
    if (name === EVENTS.started) {
      const e = StartedEventSchema.safeParse(data).data;
      onStarted(e?.pid, e?.healthcheck === true);
    } else if (name === EVENTS.health) {
      const h = HealthEventSchema.safeParse(data);
      if (h.success && startSeen && h.data.status !== c.state.status) setStatus(h.data.status, h.data.output?.slice(0, 200));
    } else if (name === EVENTS.exited) {
      const parsed = ExitedEventSchema.safeParse(data);
      if (parsed.success && !exitSeen) {
        exitSeen = true;
        resolveExit(parsed.data.exitCode);
      }
    }
  };
  conn.onEvent(onEvent);
  const vmDied = c.vm.exited.then(async (x) => {
    throw await vmStoppedError(c, `VMM exited with ${describeExit(x)}`, x);
  });
  const agentGone = conn.closed.then(async (e) => {
    // When the VM dies, its socket usually closes before the VMM's exit is seen.
    const exit = await Promise.race([c.vm.exited, deadline(1000).then(() => undefined)]);
    if (exit) throw await vmStoppedError(c, `VMM exited with ${describeExit(exit)}`, exit);
    throw errors.protocol(e instanceof ProtocolError ? e.message : `the agent hung up: ${e?.message ?? 'unknown'}`);
  });
  // These only matter while raced; once the run is over they may settle unobserved.
  vmDied.catch(() => {});
  agentGone.catch(() => {});

  // A host image is already in the guest: its container must start within the boot
  // timeout, or the run ends with a clear error instead of hanging. Pulls may take longer.
  const startLimit = c.image.kind === 'archive' ? c.opts.bootTimeoutSeconds : undefined;
  let timer: NodeJS.Timeout | undefined;
  const notStarted = startLimit === undefined ? new Promise<never>(() => {}) : new Promise<never>((_, reject) => {
    timer = setTimeout(async () => {
      const partial = conn.partialFrameBytes;
      if (partial > 0) return reject(errors.protocol(`it sent ${partial} bytes of a frame and never the rest`));
      reject(errors.agentTimeout('the container\'s start', startLimit, await consoleTail(c.vm.consoleLog)));
    }, startLimit * 1000);
    timer.unref();
    void Promise.race([started, exited]).then(() => clearTimeout(timer));
    c.cleanup.push('stop the start timer', () => clearTimeout(timer));
  });
  notStarted.catch(() => {});
  const o = c.opts;
  const plan: ContainerRun = {
    name: o.name,
    image: imageSource(c.image, o.pull),
    ...(o.command ? { command: o.command } : {}),
    env: o.env,
    privileged: o.privileged,
    cpus: o.vcpus,
    memoryMiB: o.memoryMiB,
    stdoutChannel: out.id,
    stderrChannel: err.id,
    ...(c.opts.volumes.length > 0 ? { volumes: c.opts.volumes.map((v, index) => ({ index, guest: v.guest, readOnly: v.readOnly })) } : {}),
    ...(c.image.healthcheck ? { healthcheck: c.image.healthcheck } : {}),
    ...(c.image.kind === 'pull' && !c.image.healthcheck && !o.health?.disable ? { imageHealth: imageHealthFields(o.health) } : {}),
    ...(o.tty ? { tty: true, ...(size ?? {}) } : {}),
    ...(input ? { stdinChannel: input.id } : {}),
    ...(o.workdir ? { workdir: o.workdir } : {}),
    ...(o.user ? { user: o.user } : {}),
    ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    ...(o.hostname ? { hostname: o.hostname } : {}),
    ...(Object.keys(o.labels ?? {}).length > 0 ? { labels: o.labels } : {}),
    ...(o.init ? { init: true } : {}),
    ...(o.podmanOptions?.length ? { podmanOptions: o.podmanOptions } : {}),
  };
  const restored = c.restored?.container;
  if (restored) {
    if (restored.state === 'running') {
      onStarted(restored.pid);
      if (c.restored?.health) setStatus(c.restored.health);
    } else if (restored.state === 'exited') {
      exitSeen = true;
      resolveExit(restored.exitCode ?? 0);
    } else if (restored.state === 'none') throw errors.protocol('the snapshot holds no container');
    // Events the agent sent while the clone was still starting, in order.
    c.earlyEvents?.stop();
    for (const [name, data] of c.earlyEvents?.events.splice(0) ?? []) onEvent(name, data);
  } else {
    try {
      const running = conn.request(METHODS.run, plan);
      running.catch(() => {});
      const configured = c.configured.catch((e) => {
        throw e instanceof RemoteError ? errors.agent(METHODS.configure, e.code, e.message) : e;
      });
      await Promise.race([configured.then(() => running), vmDied, agentGone, notStarted, interrupted(env.interrupt)]);
    } catch (e) {
      // A request cut off by the connection's end: say why it ended.
      if (!conn.isOpen && !isFcvmError(e)) await agentGone;
      if (e instanceof RemoteError) {
        if (e.code === 'IMAGE_PULL_FAILED') {
          const d = describePullFailure(c.opts.image, e.message, {
            tlsVerify: o.pull?.tlsVerify ?? true, hasCerts: Boolean(o.pull?.certs?.length), hasAuth: Boolean(o.pull?.auth), network: o.network,
          });
          throw errors.imagePullFailed(c.opts.image, d.registry, d.cause, d.hint);
        }
        if (e.code === 'IMAGE_LOAD_FAILED') throw errors.containerFailed(c.opts.image, e.message);
        throw errors.agent(METHODS.run, e.code, e.message);
      }
      throw e;
    }
  }

  let signalled: string | undefined;
  let resolveGaveUp!: (code: number) => void;
  const gaveUp = new Promise<number>((r) => (resolveGaveUp = r));
  const stopOnSignal = async () => {
    signalled = String(env.interrupt.reason);
    // A reader or terminal that went away (`| head -1`, a closed window) is not waited
    // for: podman's client ends at once; the container gets a short grace instead of
    // its stop timeout.
    const grace = readerIsGone() ? Math.min(READER_GONE_GRACE_S, c.opts.stopGraceSeconds) : c.opts.stopGraceSeconds;
    env.log.info(`${signalled}: stopping the container (grace ${grace}s)`);
    // So that `fcvm logs` says why it ended, foreground or detached.
    c.vmLog?.write(`fcvm: ${signalled}${readerIsGone() ? ' (the output\'s reader or terminal went away)' : ''}: stopping the container (SIGKILL after ${grace} s)\n`);
    setStatus('stopping', signalled);
    await conn.request(METHODS.stop, { graceSeconds: grace }, (grace + 10) * 1000).catch((e) => env.log.debug({ err: e }, 'stop request failed'));
    // The container had its grace period; whatever the guest does now, the VM goes.
    await deadline(5000);
    if (exitSeen) return;
    env.log.warn('the container did not report its exit after the stop; powering the VM off');
    c.vmLog?.write('fcvm: the container did not report its exit after the stop; powering the VM off\n');
    resolveGaveUp(c.stopCommand ? 128 + osConstants.signals.SIGKILL : exitCodeForSignal(signalled));
  };
  // A second signal while stopping skips the rest of the grace period.
  let signals = 0;
  const forceOnSecondSignal = (sig: NodeJS.Signals) => {
    // The first signal is the one that started the stop (both listeners see it), unless
    // the reader going away started it.
    if ((++signals < 2 && !readerIsGone()) || !signalled) return;
    env.log.warn(`${sig} again: powering the VM off now`);
    resolveGaveUp(c.stopCommand ? 128 + osConstants.signals.SIGKILL : exitCodeForSignal(signalled));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, forceOnSecondSignal);
  c.cleanup.push('forget signal handlers', () => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, forceOnSecondSignal);
  });
  if (env.interrupt.aborted) void stopOnSignal();
  else env.interrupt.addEventListener('abort', () => void stopOnSignal(), { once: true });

  const ended = await Promise.race([exited, vmDied, agentGone, gaveUp, notStarted]);
  // As podman run's: the container's own code, where it handled the stop and exited
  // (a TERM trap's `exit 9`); the signal's code, where our stop ended it (SIGTERM, or
  // SIGKILL after the grace), so that Ctrl-C still reads as 130, here and in `ps -a`.
  // `fcvm stop` is podman stop: the container's own code (143, or 137 killed after the grace).
  const code = signalled && !c.stopCommand && (ended === 128 + osConstants.signals.SIGTERM || ended === 128 + osConstants.signals.SIGKILL) ? exitCodeForSignal(signalled) : ended;
  if (timer) clearTimeout(timer);
  c.state = { ...c.state, exitCode: code };
  setStatus('stopped', `exit code ${code}`);
  await writes.flushed();
  // The agent ends both channels before it reports the exit; wait briefly for the bytes.
  await Promise.race([drained, deadline(2000)]);
  // After the output, so that `fcvm wait NAME; fcvm logs NAME` shows all of it.
  c.vmLog?.write(`${EXIT_MARK}${code}\n`);
  c.containerExit.resolve(code);
  return code;
}

/** The fields of podman's --health-* flags that go over a pulled image's own HEALTHCHECK. */
function imageHealthFields(o: HealthOverride | undefined): NonNullable<ContainerRun['imageHealth']> {
  if (!o || o.disable) return {};
  const { test: _test, disable: _disable, ...fields } = o;
  return fields;
}
