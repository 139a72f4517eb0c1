import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import {
  ContainerKillSchema, ContainerResizeSchema, ContainerRunSchema, ContainerStopSchema, EVENTS, EXEC, ImageSourceSchema, ExecResizeSchema, ExecSignalSchema, ExecStartSchema,
  METHODS, SessionOpenSchema, VmConfigureSchema, VmRestoredSchema, VmSnapshotDoneSchema, type RestoredResult, type Volume,
} from '../protocol/api.js';
import { restoreOps, type RestoreOps } from '../os/libc.js';
import { refineClock, setClock, setClockForward } from './clock.js';
import { channelTransport } from '../protocol/channel-transport.js';
import { Connection } from '../protocol/connection.js';
import { FEATURES } from '../protocol/messages.js';
import { Container } from './container.js';
import { parseParams } from '../protocol/params.js';
import { containerHostnameFile, containerHostsFile, HOST_ALIAS, NO_NETWORK_SELF, rewriteHosts } from './podman-args.js';
import { checkImage, loadArchive } from './image.js';
import { startExec, warmExecSpawner, type RunningExec } from './exec.js';
import { afterFlushed, channelsPressure, feed } from './channel-io.js';
import { MemoryTrim } from './memory-trim.js';
import { configureNetwork } from './network.js';

/** How long an exec waits for the container to start (a pull may be under way). */
const CONTAINER_START_WAIT_MS = 300_000;

/** Mounts a volume in the guest, ready for podman to bind (fuse-relay.ts). */
export interface VolumeMounter {
  mount(v: Volume): Promise<void>;
}

/** What a snapshot asks of the guest's link to the host. */
export interface SessionControl {
  arm(): void | Promise<void>;
  disarm(): void | Promise<void>;
}

/** Runs `fn` once the answer being returned now has been sent (it is sent before the next turn). */
const afterAnswer = (fn: () => Promise<void>) => void setImmediate(() => void fn());

const parse = parseParams;

/**
 * The agent's state and request handling. One instance per guest; every session (the
 * supervisor's, and nested ones for `fcvm exec`) is served by it. The container and
 * execs outlive a session only as far as the protocol says: a dropped session ends
 * its execs, while the container keeps running for the next session.
 */
export class AgentService {
  private readonly container = new Container();
  private readonly memory = new MemoryTrim();
  private containerName = '';
  /** The VM's gateway (its host, as the container sees it), from configure or a restore. */
  private gateway: string | undefined;
  /** The guest's own address (the container's host name resolves to it). */
  private address: string | undefined;
  /** The supervisor's session: container output and events go there. */
  private main: Connection | undefined;
  private output: { stdout: number; stderr: number; stdin?: number; tty?: boolean } | undefined;
  private lastHealth: 'healthy' | 'unhealthy' | undefined;
  /** The session the container's stdin is read from. */
  private stdinSession: Connection | undefined;

  constructor(
    private readonly bootId: string,
    private readonly link: SessionControl,
    private readonly volumes?: VolumeMounter,
  ) {}

  /** Serves a new top-level session, replacing the previous one. */
  attachMain(conn: Connection): void {
    this.main?.close();
    this.main = conn;
    this.serve(conn);
    this.wireStdin(conn);
  }

  /**
   * The container's stdin (-i) comes from a channel of the main session; a new session
   * (a clone's host) takes it over. Only the host's end of the channel is an EOF: a
   * session that closes leaves the container's stdin open for the next one.
   */
  private wireStdin(conn: Connection): void {
    const id = this.output?.stdin;
    if (id === undefined || this.stdinSession === conn || !this.container.hasInput()) return;
    this.stdinSession = conn;
    const ch = conn.channel(id);
    ch.on('data', (d) => feed(this.container.stdin(), d, ch));
    ch.on('end', () => conn.isOpen && this.container.endStdin());
  }

  private serve(conn: Connection): void {
    const execs = new Map<string, RunningExec>();
    void conn.closed.then(() => {
      for (const e of execs.values()) e.signal('SIGKILL');
      execs.clear();
    });
    conn.onRequest(async (method, params) => {
      switch (method) {
        case METHODS.configure: {
          const p = parse(VmConfigureSchema, params);
          // Before any await: container.run may come in beside this request.
          this.gateway = p.network?.gateway;
          this.address = p.network?.address;
          writeFileSync('/proc/sys/kernel/hostname', p.hostname);
          // The RTC gives a fresh guest the host's time in whole seconds: up to 1 s behind,
          // which put new files' times in the guest's future on a volume.
          await setClockForward(p.clockMs);
          afterAnswer(() => refineClock(conn));
          if (p.network) await configureNetwork(p.network);
          return {};
        }
        case METHODS.memoryTrim:
          return this.memory.trim();
        case METHODS.snapshotPrepare:
          await this.memory.restore();
          // Loaded now, so clones find it in their memory instead of loading it under the clock.
          await restoreOps();
          await this.link.arm();
          return {};
        case METHODS.snapshotDone: {
          const p = parse(VmSnapshotDoneSchema, params);
          try {
            await this.memory.restore();
          } finally {
            await this.link.disarm();
          }
          // The pause stopped the guest's clock: it is about 100 ms behind now.
          if (p.clockMs !== undefined) await setClockForward(p.clockMs);
          afterAnswer(() => refineClock(conn));
          return {};
        }
        case METHODS.restored: {
          const result = await this.restored(params);
          afterAnswer(() => refineClock(conn));
          return result;
        }
        case METHODS.prepareImage: {
          const image = parse(ImageSourceSchema, params);
          if (image.kind !== 'archive') throw Object.assign(new Error('only an image archive can be prepared'), { code: 'UNSUPPORTED' });
          await loadArchive(image.diskSerial, image.id);
          await checkImage(image.id);
          return {};
        }
        case METHODS.run:
          return this.runContainer(params);
        case METHODS.stop:
          await this.container.stop(parse(ContainerStopSchema, params).graceSeconds);
          return {};
        case METHODS.status:
          return this.container.status();
        case METHODS.kill:
          this.container.kill(parse(ContainerKillSchema, params).signal);
          return {};
        case METHODS.resize: {
          const p = parse(ContainerResizeSchema, params);
          this.container.resize(p.cols, p.rows);
          return {};
        }
        case EXEC.openSession: {
          const { channel } = parse(SessionOpenSchema, params);
          const sub = new Connection(channelTransport(conn.channel(channel)), { role: 'agent', features: FEATURES, bootId: this.bootId });
          void sub.closed.then(() => conn.releaseChannel(channel));
          this.serve(sub);
          sub.handshake().catch(() => {});
          return {};
        }
        case EXEC.start:
          return this.startExec(conn, execs, parse(ExecStartSchema, params));
        case EXEC.resize: {
          const p = parse(ExecResizeSchema, params);
          execs.get(p.execId)?.resize(p.cols, p.rows);
          return {};
        }
        case EXEC.signal: {
          const p = parse(ExecSignalSchema, params);
          execs.get(p.execId)?.signal(p.signal);
          return {};
        }
        default:
          throw Object.assign(new Error(`unknown method "${method}"`), { code: 'UNSUPPORTED' });
      }
    });
  }

  /**
   * A clone's first request: its clock is the snapshot's, its randomness its source's,
   * its gateway's link address maybe another. Reports the container and its channels,
   * so the new host can go on where the source's host was.
   */
  private async restored(params: unknown): Promise<RestoredResult> {
    const p = parse(VmRestoredSchema, params);
    const ops = await setClock(p.clockMs);
    const fd = openSync('/dev/urandom', 'w');
    try {
      ops.reseedRandom(fd, Buffer.from(p.entropy, 'base64'));
    } finally {
      closeSync(fd);
    }
    const before = readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();
    writeFileSync('/proc/sys/kernel/hostname', p.hostname);
    this.renameContainerHost(ops, before, p.hostname);
    // Same network: nothing to do. The guest's addresses and its gateway's link address
    // (GATEWAY_MAC; slirp's is fixed too) are the same in every VM, so what the guest
    // learned still holds; and a process started here (a fork of this process) would
    // cost the restored guest about 100 ms under TCG.
    if (p.network) {
      await configureNetwork(p.network);
      this.moveContainerHosts(p.network);
    }
    return {
      container: this.container.status(),
      ...(this.output ? { stdoutChannel: this.output.stdout, stderrChannel: this.output.stderr } : {}),
      ...(this.output?.stdin !== undefined ? { stdinChannel: this.output.stdin } : {}),
      ...(this.output?.tty ? { tty: true } : {}),
      ...(this.lastHealth ? { health: this.lastHealth } : {}),
    };
  }

  /**
   * A clone's container has its own UTS namespace and /etc/hostname, both its source's
   * host name, which is the source VM's (a cold run's container gets the VM's: --hostname
   * names both). They follow the VM's to the clone's, so no two clones share one, and so
   * does the name's line in its /etc/hosts. A name that is not the VM's is left as it is.
   */
  private renameContainerHost(ops: RestoreOps, from: string, to: string): void {
    const c = this.container.status();
    const id = this.container.id();
    if (c.state !== 'running' || c.pid === undefined || from === to) return;
    try {
      if (!ops.renameHostOf(c.pid, from, to)) return;
      const file = id && containerHostnameFile(id);
      const text = file ? readFileSync(file, 'utf8') : '';
      if (file && text.trim() === from) writeFileSync(file, text.endsWith('\n') ? `${to}\n` : to);
      // Never podman's own localhost line (a VM may be named localhost).
      if (id && from !== 'localhost' && to !== 'localhost') this.editContainerHosts(id, (address, names) => ({ address, names: names.map((n) => (n === from ? to : n)) }));
    } catch (e) {
      process.stderr.write(`fcvm-agent: the container keeps the host name "${from}": ${(e as Error).message}\n`);
    }
  }

  /**
   * A clone on another network (bridged to rootless) has another gateway and address:
   * the container's host.containers.internal and its own name's line follow them.
   */
  private moveContainerHosts(net: { gateway: string; address: string }): void {
    const before = { gateway: this.gateway, address: this.address };
    this.gateway = net.gateway;
    this.address = net.address;
    const id = this.container.id();
    if (!id || (before.gateway === net.gateway && before.address === net.address)) return;
    try {
      this.editContainerHosts(id, (address, names) => {
        if (names.includes(HOST_ALIAS)) return { address: address === before.gateway ? net.gateway : address, names };
        return { address: address === before.address ? net.address : address, names };
      });
    } catch (e) {
      process.stderr.write(`fcvm-agent: the container's /etc/hosts keeps its old addresses: ${(e as Error).message}\n`);
    }
  }

  private editContainerHosts(id: string, change: Parameters<typeof rewriteHosts>[1]): void {
    const file = containerHostsFile(id);
    // A container run with --no-hosts has none: its image's is its own.
    if (!existsSync(file)) return;
    const text = readFileSync(file, 'utf8');
    const next = rewriteHosts(text, change);
    if (next !== text) writeFileSync(file, next);
  }

  private async runContainer(params: unknown): Promise<object> {
    const plan = parse(ContainerRunSchema, params);
    // On the console, which a start timeout quotes: did the request arrive at all?
    process.stdout.write(`fcvm-agent: container.run received (${plan.image.kind})\n`);
    this.containerName = plan.name;
    for (const v of plan.volumes ?? []) {
      if (!this.volumes) throw Object.assign(new Error('this guest has no volume channel'), { code: 'RUN_FAILED' });
      await this.volumes.mount(v).catch((e) => {
        throw Object.assign(new Error(`cannot mount the volume for ${v.guest}: ${(e as Error).message}`), { code: 'RUN_FAILED' });
      });
    }
    this.output = { stdout: plan.stdoutChannel, stderr: plan.stderrChannel, ...(plan.stdinChannel !== undefined ? { stdin: plan.stdinChannel } : {}), ...(plan.tty ? { tty: true } : {}) };
    // Output goes to whichever main session is current when it is produced.
    await this.container.run(plan, {
      stdout: (c) => this.main?.channel(plan.stdoutChannel).write(c),
      stderr: (c) => this.main?.channel(plan.stderrChannel).write(c),
      // Whichever session is current: its channels' windows, then the link.
      pressure: {
        full: () => (this.main ? channelsPressure([this.main.channel(plan.stdoutChannel), this.main.channel(plan.stderrChannel)]).full() : false),
        onceDrained: (cb) => (this.main ? channelsPressure([this.main.channel(plan.stdoutChannel), this.main.channel(plan.stderrChannel)]).onceDrained(cb) : cb()),
      },
      started: (pid, healthcheck) => {
        this.main?.emit(EVENTS.started, { ...(pid ? { pid } : {}), ...(healthcheck ? { healthcheck } : {}) });
        warmExecSpawner({ name: plan.name, id: this.container.id() });
      },
      health: (status, output) => {
        this.lastHealth = status;
        this.main?.emit(EVENTS.health, { status, output });
      },
      exited: (exitCode) => {
        const main = this.main;
        if (!main) return;
        const channels = [main.channel(plan.stdoutChannel), main.channel(plan.stderrChannel)];
        for (const c of channels) c.end();
        // Behind the output that still waits for the host's window.
        afterFlushed(channels, () => this.main?.emit(EVENTS.exited, { exitCode }));
      },
    }, {
      ...(this.gateway ? { gateway: this.gateway } : {}),
      ...selfEntry(plan.hostname ?? readFileSync('/proc/sys/kernel/hostname', 'utf8').trim(), this.address),
    });
    // Input that came while the image was prepared waits in the channel until now.
    if (this.main) this.wireStdin(this.main);
    return {};
  }

  private async startExec(conn: Connection, execs: Map<string, RunningExec>, req: ReturnType<typeof ExecStartSchema.parse>): Promise<object> {
    // A client that gave up (a loaded guest answered too late) has its session ended right
    // behind its requests: read that first instead of paying for a process nobody awaits.
    await new Promise((r) => setImmediate(r));
    if (!conn.isOpen) throw Object.assign(new Error('the session ended before the exec started'), { code: 'FAILED' });
    // Right after `podman run -d` the container may still be starting: wait for it, as
    // podman's exec finds a container that `run -d` has started.
    const until = Date.now() + CONTAINER_START_WAIT_MS;
    while (req.target === 'container' && ['none', 'preparing'].includes(this.container.status().state) && conn.isOpen && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    if (req.target === 'container' && this.container.status().state !== 'running') {
      throw Object.assign(new Error(`the container is ${this.container.status().state}, not running`), { code: 'NOT_RUNNING' });
    }
    const out = conn.channel(req.stdoutChannel);
    const err = req.stderrChannel !== undefined ? conn.channel(req.stderrChannel) : undefined;
    // stdin may arrive while the process is still being started: hold it until then.
    // The channel is held meanwhile, so at most a window of it waits here.
    const held: Buffer[] = [];
    let heldEnd = false;
    let exec: RunningExec | undefined;
    const input = req.stdinChannel !== undefined ? conn.channel(req.stdinChannel) : undefined;
    const releaseInput = input?.hold();
    if (input) {
      input.on('data', (d) => (exec ? feed(exec.stdin, d, input) : held.push(d)));
      input.on('end', () => (exec ? exec.endStdin() : (heldEnd = true)));
    }
    let id = '';
    const state = this.container.status();
    exec = await startExec(req, { name: this.containerName, id: this.container.id(), pid: state.state === 'running' ? state.pid : undefined }, {
      stdout: (c) => out.write(c),
      stderr: (c) => (err ?? out).write(c),
      pressure: channelsPressure(err ? [out, err] : [out]),
      exited: (exitCode) => {
        execs.delete(id);
        out.end();
        err?.end();
        // Behind the output that still waits for the client's window.
        afterFlushed(err ? [out, err] : [out], () => conn.emit(EXEC.exited, { execId: id, exitCode }));
      },
    }).catch((e: unknown) => {
      releaseInput?.();
      throw e;
    });
    id = exec.id;
    execs.set(id, exec);
    for (const d of held.splice(0)) feed(exec.stdin, d, input);
    if (heldEnd) exec.endStdin();
    releaseInput?.();
    return { execId: id };
  }
}

/** The container's own name in its /etc/hosts, unless it is localhost (podman's line has it). */
function selfEntry(name: string, address: string | undefined): { self?: { name: string; address: string } } {
  return name === 'localhost' ? {} : { self: { name, address: address ?? NO_NETWORK_SELF } };
}
