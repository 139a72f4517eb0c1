import { createWriteStream } from 'node:fs';
import { chown, readFile, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { deadline } from '../../util/proc.js';
import { connectWhenReady } from '../../util/unix-socket.js';
import type { QmpClient } from './qmp.js';

/** How long a migration (device state only: RAM is shared or file-backed) may take. */
const MIGRATION_TIMEOUT_MS = 60_000;
/**
 * The most device state fcvm takes from a VMM. A microvm's is about 50 KB (RAM is not in
 * it); a VMM sending more is broken or hostile, and must not fill the host's disk.
 */
export const MAX_STATE_BYTES = 64 * 2 ** 20;

/**
 * Saves the paused VM's device state into `file`. QEMU connects to a Unix socket fcvm
 * listens on in the VMM's directory (owned by `owner`, the jailed VMM's identity) and
 * streams the state; no process is spawned, which the jail's seccomp filter would forbid.
 */
export async function saveDeviceState(qmp: QmpClient, socketPath: string, file: string, owner: { uid: number; gid: number } | undefined): Promise<void> {
  await rm(socketPath, { force: true });
  const server = createServer();
  let connected = false;
  let settle!: { resolve: () => void; reject: (e: unknown) => void };
  const received = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  received.catch(() => {});
  server.on('connection', (sock: Socket) => {
    // One connection only: QEMU's.
    if (connected) return void sock.destroy();
    connected = true;
    pipeline(sock, capped(MAX_STATE_BYTES), createWriteStream(file, { mode: 0o600 })).then(settle.resolve, settle.reject);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  try {
    if (owner) await chown(socketPath, owner.uid, owner.gid);
    await migrate(qmp, 'migrate', `unix:${socketPath}`);
    // QMP's completion event may be read before the connection is accepted: wait for the
    // stream itself (it ends only after QEMU connected and sent everything).
    await Promise.race([received, deadline(10_000).then(() => Promise.reject(new Error(connected ? 'the device state did not finish arriving' : 'QEMU reported the migration complete but never connected')))]);
  } finally {
    server.close();
    await rm(socketPath, { force: true });
  }
}

/** Loads device state from `file` into a QEMU started with `-incoming defer`, through a Unix socket it listens on. */
export async function loadDeviceState(qmp: QmpClient, socketPath: string, file: string, alive: () => boolean): Promise<void> {
  let sock: Socket | undefined;
  try {
    await migrate(qmp, 'migrate-incoming', `unix:${socketPath}`, async () => {
      sock = await connectWhenReady(socketPath, 10_000, alive);
      await feedDeviceState(sock, file);
    });
  } finally {
    sock?.destroy();
  }
}

/**
 * Hands the whole of `file` to QEMU's incoming socket, then half-closes it. Done once the
 * kernel has every byte: QEMU may read them all and close its end before this side's
 * half-close completes (a stream pipeline calls that a "premature close"), and whether it
 * loaded them is for its MIGRATION event, or its exit, to say. A failed write is the
 * feed's own error; a QEMU that closes early is not always seen here (Node reports a write
 * pending on a socket destroyed by the peer's close as done), but QEMU then fails the load.
 */
export async function feedDeviceState(sock: Socket, file: string): Promise<void> {
  const data = await readFile(file);
  if (data.length > MAX_STATE_BYTES) throw new Error(`the device state ${file} is ${data.length} bytes, more than the ${MAX_STATE_BYTES} a snapshot holds`);
  sock.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    sock.write(data, (e) => (e ? reject(new Error(`QEMU closed the device-state connection before taking all ${data.length} bytes: ${e.message}`)) : resolve()));
  });
  sock.end();
}

/** A stream that fails once more than `max` bytes went through. */
function capped(max: number): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      cb(n > max ? new Error(`the VMM sent more than ${max} bytes of device state`) : null, chunk);
    },
  });
}

/**
 * Runs an outgoing or incoming migration of device state (RAM is excluded with
 * x-ignore-shared), feeding it with `feed` if given, and waits for QEMU's MIGRATION
 * event to say it completed.
 */
async function migrate(qmp: QmpClient, command: 'migrate' | 'migrate-incoming', uri: string, feed?: () => Promise<void>): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'x-ignore-shared', state: true }, { capability: 'events', state: true }],
  });
  let onEvent!: (name: string, data: unknown) => void;
  let onClose!: () => void;
  const done = new Promise<void>((resolve, reject) => {
    onEvent = (name, data) => {
      if (name !== 'MIGRATION') return;
      const status = (data as { status?: string }).status;
      if (status === 'completed') resolve();
      else if (status === 'failed' || status === 'cancelled') reject(new Error(`migration ${status}`));
    };
    onClose = () => reject(new Error('QEMU exited during the migration'));
    qmp.on('event', onEvent);
    qmp.once('close', onClose);
  });
  done.catch(() => {});
  try {
    await qmp.execute(command, { uri });
    const fed = feed?.();
    fed?.catch(() => {});
    // Feeding that fails (QEMU never took the connection, say) fails the migration at once.
    const feedFailed = fed ? fed.then(() => new Promise<never>(() => {})) : new Promise<never>(() => {});
    feedFailed.catch(() => {});
    const timeout = deadline(MIGRATION_TIMEOUT_MS).then(() => 'timeout' as const);
    if ((await Promise.race([done, timeout, feedFailed])) === 'timeout') {
      // A migration left running would stop the VM whenever it completes.
      await qmp.execute('migrate_cancel').catch(() => {});
      await Promise.race([done.catch(() => {}), deadline(5000)]);
      throw new Error(`migration did not complete within ${MIGRATION_TIMEOUT_MS / 1000}s`);
    }
    await fed;
  } finally {
    qmp.off('event', onEvent);
    qmp.off('close', onClose);
  }
}
