import { spawn } from 'node:child_process';
import { access, constants, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errors } from '../errors/catalogue.js';
import type { Manifest } from '../setup/manifest.js';
import { writeFileAtomic } from '../util/fs-atomic.js';
import type { Logger } from '../util/log.js';
import type { Accel } from './driver.js';
import { QEMU_BINARY, qemuVersionLine } from './qemu/version.js';
import { MICROVM_FIRMWARE } from './qemu/command.js';

export type AccelChoice = Accel | 'auto';

const PROBE_MARK = 'FCVM_PROBE_OK';
/**
 * The probe gives up after this long without console output: a KVM that cannot run
 * ordinary kernels (PVM) goes silent after "Probing EDD", before the kernel's first line.
 * A guest that is only slow (a nested KVM inside a VM under emulation takes seconds per
 * stage) keeps printing, up to PROBE_MAX_MS in all; once its kernel has printed its
 * banner, it may pause for up to PROBE_KERNEL_SILENCE_MS (measured: 4.6 s, nested under
 * a one-vCPU TCG guest, more on a busy one).
 */
const PROBE_SILENCE_MS = 8000;
const PROBE_KERNEL_SILENCE_MS = 30_000;
/** The kernel's first console line: the guest got past the point where PVM hangs. */
const KERNEL_BANNER = 'Linux version';
const PROBE_MAX_MS = 120_000;
const TIMEOUT_ANSWER_TTL_MS = 3600_000;

async function kvmAccessible(): Promise<boolean> {
  return access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false);
}

/**
 * Picks the accelerator. `auto` uses KVM only if our guest kernel really boots under
 * it (a KVM that can create VMs may still be unable to run this kernel, as with PVM
 * hosts); the probe's answer is cached per kernel, initrd and QEMU version.
 */
export async function resolveAccel(choice: AccelChoice, manifest: Manifest, cachePath: string, log: Logger): Promise<Accel> {
  if (choice === 'tcg') return 'tcg';
  const kvm = await kvmAccessible();
  if (choice === 'kvm') {
    if (!kvm) throw errors.accelUnavailable('kvm', '/dev/kvm is missing or not accessible');
    return 'kvm';
  }
  if (!kvm) return 'tcg';
  const qemuVersion = await qemuVersionLine();
  const key = `${manifest.kernel.hash}/${manifest.initrd.hash}/${qemuVersion}`;
  const cached = await readFile(cachePath, 'utf8').then((t) => JSON.parse(t) as { key: string; kvm: boolean; definite?: boolean; probedAt?: string }, () => undefined);
  const fresh = cached?.definite !== false || Date.now() - Date.parse(cached.probedAt ?? '') < TIMEOUT_ANSWER_TTL_MS;
  if (cached?.key === key && fresh) return cached.kvm ? 'kvm' : 'tcg';
  log.info('probing whether the guest kernel boots under KVM (once; the answer is cached)');
  const { kvm: ok, definite } = await probeKvm(manifest, log);
  // A boot or a refusal is remembered for good; a timeout (maybe just a busy host) for an hour.
  // Its directory may not exist yet (a base dir whose setup downloaded nothing); an
  // answer that cannot be kept is probed again next time, never a failed run.
  await mkdir(dirname(cachePath), { recursive: true })
    .then(() => writeFileAtomic(cachePath, JSON.stringify({ key, kvm: ok, definite, probedAt: new Date().toISOString() }) + '\n'))
    .catch((e: Error) => log.warn({ err: e.message }, 'the KVM probe\'s answer could not be cached'));
  return ok ? 'kvm' : 'tcg';
}

/** Boots the guest kernel under KVM with `fcvm.probe=1`; the initrd prints a mark and powers off. */
function probeKvm(manifest: Manifest, log: Logger): Promise<{ kvm: boolean; definite: boolean }> {
  return new Promise((resolve) => {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', QEMU_BINARY,
      '-M', 'microvm,acpi=on', '-accel', 'kvm', '-cpu', 'host', '-m', '256M', '-smp', '1',
      '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio', '-bios', MICROVM_FIRMWARE,
      '-kernel', manifest.kernel.path, '-initrd', manifest.initrd.path,
      // Not quiet: the kernel's messages show progress (see PROBE_SILENCE_MS).
      '-append', 'console=ttyS0 panic=-1 reboot=t fcvm.probe=1',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (ok: boolean, why: string, definite = true) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(cap);
      child.kill('SIGKILL');
      log.info({ kvm: ok, why }, `KVM probe: ${ok ? 'the guest boots under KVM' : `not usable (${why}); using TCG`}`);
      resolve({ kvm: ok, definite });
    };
    let inKernel = false;
    const silence = () => (inKernel ? PROBE_KERNEL_SILENCE_MS : PROBE_SILENCE_MS);
    const silent = () => finish(false, `no console output for ${silence()} ms`, false);
    let timer = setTimeout(silent, PROBE_SILENCE_MS);
    const cap = setTimeout(() => finish(false, `no boot within ${PROBE_MAX_MS} ms`, false), PROBE_MAX_MS);
    child.on('error', (e) => finish(false, e.message, false));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out = (out + d).slice(-4096);
      inKernel ||= out.includes(KERNEL_BANNER);
      clearTimeout(timer);
      timer = setTimeout(silent, silence());
      if (out.includes(PROBE_MARK)) finish(true, 'booted');
    });
    child.stderr.on('data', () => {});
    child.on('exit', (code, signal) => finish(out.includes(PROBE_MARK), `QEMU exited with ${signal ?? `code ${code}`}`));
  });
}
