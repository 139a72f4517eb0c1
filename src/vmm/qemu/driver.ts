import { spawn } from 'node:child_process';
import { errors } from '../../errors/catalogue.js';
import { socketTransport, type Transport } from '../../protocol/transport.js';
import type { CleanupStack } from '../../util/cleanup-stack.js';
import { which } from '../../util/exec.js';
import type { Logger } from '../../util/log.js';
import { deadline } from '../../util/proc.js';
import { connectWhenReady } from '../../util/unix-socket.js';
import type { DriverCapabilities, RunningVm, StoppedVm, VmExit, VmmDriver, VmSpec } from '../driver.js';
import { qemuArgs, qemuPaths } from './command.js';
import { QmpClient } from './qmp.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

/** The QEMU `microvm` driver, controlled through QMP. */
export class QemuDriver implements VmmDriver {
  readonly name = 'qemu' as const;
  readonly capabilities: DriverCapabilities = {
    snapshot: true,
    uffd: false,
    tcg: true,
    diskFormats: ['raw', 'qcow2'],
    guestChannel: 'virtio-serial',
    nicKinds: ['tap', 'user'],
  };

  constructor(private readonly log: Logger) {}

  async unavailableReason(): Promise<string | undefined> {
    return (await which(QEMU_BINARY)) ? undefined : `${QEMU_BINARY} is not installed (apt-get install qemu-system-x86)`;
  }

  async boot(spec: VmSpec, cleanup: CleanupStack): Promise<RunningVm> {
    const args = qemuArgs(spec);
    this.log.debug({ argv: [QEMU_BINARY, ...args].join(' ') }, 'starting QEMU');
    // setpriv's pdeathsig makes the kernel kill QEMU if fcvm dies, even by SIGKILL.
    // nsenter puts QEMU in the VM's network namespace, where its TAP device is.
    const netns = spec.netns ? ['nsenter', `--net=/run/netns/${spec.netns}`, '--'] : [];
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...netns, QEMU_BINARY, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    let exit: VmExit | undefined;
    const exited = new Promise<VmExit>((resolve) => {
      child.on('exit', (code, signal) => {
        exit = { code, signal };
        resolve(exit);
      });
      child.on('error', (e) => {
        stderr += e.message;
        exit = { code: 127, signal: null };
        resolve(exit);
      });
    });
    cleanup.push('kill QEMU', async () => {
      if (exit) return;
      child.kill('SIGKILL');
      await exited;
    });
    const paths = qemuPaths(spec.runDir);
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(paths.qmp, 10_000, () => !exit);
    } catch (e) {
      await Promise.race([exited, deadline(200)]);
      const why = stderr.trim().split('\n').filter(Boolean).pop();
      throw errors.vmmFailed(`QEMU failed to start${why ? `: ${why}` : ''}`, e);
    }
    cleanup.push('close QMP', () => qmp.close());
    qmp.on('event', (name, data) => this.log.debug({ event: name, data }, 'QMP event'));
    const pid = child.pid!;
    const log = this.log;

    const vm: RunningVm = {
      pid,
      consoleLog: paths.console,
      exited,
      connectAgent: () => connectWithRetry(paths.agent, 10_000, () => !exit),
      pause: async () => void (await qmp.execute('stop')),
      resume: async () => void (await qmp.execute('cont')),
      stop: async (): Promise<StoppedVm> => {
        if (!exit) {
          await Promise.race([qmp.execute('quit').catch((e) => log.debug({ err: e }, 'quit failed')), deadline(2000)]);
          const done = await Promise.race([exited, deadline(3000).then(() => undefined)]);
          if (!done) child.kill('SIGKILL');
        }
        return { exit: await exited };
      },
    };
    return vm;
  }
}

async function connectWithRetry(path: string, timeoutMs: number, alive: () => boolean): Promise<Transport> {
  try {
    return socketTransport(await connectWhenReady(path, timeoutMs, alive));
  } catch (e) {
    throw errors.vmmFailed(`cannot connect to the agent socket ${path}`, e);
  }
}
