import { ERROR_CODES, FcvmError, type ErrorCode } from './fcvm-error.js';

/**
 * The catalogue: one factory per failure a user can meet. Callers never build messages
 * by hand, so wording and hints stay consistent and each has a stable code.
 */
export const errors = {
  usage: (message: string, hint = 'Run "fcvm --help" for usage') =>
    new FcvmError('USAGE', message, { hint }),

  invalidName: (kind: string, name: string, why: string) =>
    new FcvmError('INVALID_NAME', `invalid ${kind} "${truncate(name)}": ${why}`, {
      hint: 'Use 1-63 characters from a-z A-Z 0-9 . _ -, starting with a letter or digit',
    }),

  invalidOption: (flag: string, value: string, why: string, hint: string) =>
    new FcvmError('INVALID_OPTION', `invalid ${flag} "${truncate(value)}": ${why}`, { hint }),

  nameInUse: (name: string, pid: number) =>
    new FcvmError('NAME_IN_USE', `a VM named "${name}" is already running (pid ${pid})`, {
      hint: 'Choose another --name, or stop the running VM first',
    }),

  vmNotFound: (what: string) =>
    new FcvmError('VM_NOT_FOUND', `no running VM ${what}`, { hint: 'Run "fcvm ls" to see running VMs' }),

  // As podman's "can only ... running containers": a kept VM that ended is no running VM either.
  vmEnded: (name: string, exitCode: number | undefined) =>
    new FcvmError('VM_NOT_FOUND', `VM "${name}" has ended${exitCode === undefined ? '' : ` (exit ${exitCode})`}: only a running VM takes this`, {
      hint: `See its output with "fcvm logs ${name}"; start a new one with "fcvm podman run --name ${name} ..."`,
    }),

  // podman rm's exit codes: 2 for a running container, 1 for one that does not exist.
  vmRunning: (name: string) =>
    new FcvmError('VM_RUNNING', `VM "${name}" is running: rm takes only what ended`, {
      hint: `Stop it first ("fcvm stop ${name}"), or remove it with rm --force`,
      exitCode: 2,
    }),

  nothingToRemove: (name: string) =>
    new FcvmError('VM_NOT_FOUND', `no VM named "${name}", running or ended with a kept log`, {
      hint: 'Run "fcvm ps -a" to see running and ended VMs; rm --ignore skips names that are gone',
      exitCode: 1,
    }),

  notRunningOrKept: (name: string) =>
    new FcvmError('VM_NOT_FOUND', `no VM named "${name}", running or ended with a kept log`, {
      hint: 'Run "fcvm ps -a" to see running and ended VMs; an ended VM is kept for a day (not with --rm)',
    }),

  exitUnknown: (name: string) =>
    new FcvmError('EXIT_UNKNOWN', `VM "${name}" ended without a known exit code (its supervisor was killed, or the VM failed before its container ended)`, {
      hint: `Run "fcvm logs ${name}" to see why it ended`,
    }),

  waitUnsupported: (name: string) =>
    new FcvmError('EXIT_UNKNOWN', `VM "${name}" runs under a supervisor from an older fcvm, which cannot be waited for`, {
      hint: `Follow it with "fcvm logs -f ${name}" instead`,
    }),

  killFailed: (name: string, signal: string, why: string) =>
    new FcvmError('KILL_FAILED', `${signal} did not reach VM "${name}"'s container: ${why}`, {
      hint: `Run "fcvm ls" to see whether it still runs; "fcvm stop ${name}" stops it`,
    }),

  vmNotReady: (name: string, status: string) =>
    new FcvmError('VM_NOT_READY', `VM "${name}" is ${status}, not ready for commands yet`, {
      hint: 'Wait until "fcvm ls" shows it running or healthy, then try again',
    }),

  execFailed: (what: string, message: string, hint = 'Check the command; "fcvm exec NAME --vm -- ..." runs in the guest OS instead of the container') =>
    new FcvmError('EXEC_FAILED', `exec in ${what} failed: ${message}`, { hint }),

  imageNotFound: (image: string, cause?: unknown) =>
    new FcvmError('IMAGE_NOT_FOUND', `image "${image}" is not in ${podmanStorage()}`, {
      hint: 'Check "podman images", or add it with "podman import" / "podman load"',
      cause,
    }),

  /** A pull in the guest failed: the registry, the cause in a few words, and what to do. */
  imagePullFailed: (image: string, registry: string, cause: string, hint: string) =>
    new FcvmError('IMAGE_PULL_FAILED', `could not pull image "${image}" from registry ${registry}: ${cause}`, { hint }),

  imageNotLocal: (image: string) =>
    new FcvmError('IMAGE_NOT_FOUND', `image "${image}" is not in ${podmanStorage()}, and --pull never forbids a pull`, {
      hint: 'Add it with "podman pull", "podman load" or "podman import", or use --pull missing',
    }),

  unsupportedOption: (flag: string, why: string, hint: string) =>
    new FcvmError('UNSUPPORTED_OPTION', `fcvm podman run does not take ${flag}: ${why}`, { hint }),

  logNotFound: (name: string) =>
    new FcvmError('LOG_NOT_FOUND', `no running VM named "${name}", and no log of one`, {
      hint: 'Run "fcvm ps -a" to see running and ended VMs; a VM\'s log is kept for a day after it ends (unless it ran with --rm)',
    }),

  stopFailed: (name: string, why: string) =>
    new FcvmError('STOP_FAILED', `VM "${name}" did not stop: ${why}`, {
      hint: 'Run "fcvm ls" to see whether it is still there; the next fcvm command reaps what a killed supervisor left',
    }),

  setupMissing: (baseDir: string, what: string, asUser = false) =>
    new FcvmError('SETUP_MISSING', `fcvm is not set up in ${baseDir} (${what} missing)${asUser ? ', nor by root' : ''}`, {
      hint: asUser
        ? 'Have root run "sudo fcvm setup" once: every user then runs VMs with its artifacts'
        : 'Run "fcvm setup" first, or add --setup to build the artifacts now',
    }),

  setupFailed: (step: string, cause: unknown) =>
    new FcvmError('SETUP_FAILED', `setup step "${step}" failed: ${messageOf(cause)}`, {
      hint: 'Fix the cause above and run "fcvm setup" again (add --force to rebuild from scratch)',
      cause,
    }),

  preflight: (check: string, problem: string, fix: string) =>
    new FcvmError('PREFLIGHT', `${check}: ${problem}`, { hint: fix }),

  hypervisorUnavailable: (name: string, why: string) =>
    new FcvmError('HYPERVISOR_UNAVAILABLE', `hypervisor "${name}" is not available: ${why}`, {
      hint: 'Use --hypervisor qemu (or auto)',
    }),

  accelUnavailable: (accel: string, why: string) =>
    new FcvmError('ACCEL_UNAVAILABLE', `accelerator "${accel}" is not usable here: ${why}`, {
      hint: 'Use --accel tcg or --accel auto',
    }),

  nestedUnavailable: (why: string, hint: string) =>
    new FcvmError('NESTED_UNAVAILABLE', `this host cannot run VMs inside VMs: ${why}`, { hint }),

  vmmFailed: (what: string, cause?: unknown, consoleTail?: string) =>
    new FcvmError('VMM_FAILED', `${what}${consoleTail ? `; guest console ends with: ${consoleTail}` : ''}`, {
      hint: 'Run with FCVM_LOG=debug for details; the full console log is kept in the VM\'s log when a start fails',
      cause,
    }),

  guestTimer: (why: string, resets: number) =>
    new FcvmError('VMM_FAILED', `the guest's timer could not be calibrated: ${why}, on each of ${resets + 1} boots`, {
      hint: 'The host descheduled the VM during its 100 ms timer calibration every time: run fewer VMs at once, or use KVM (--accel kvm)',
    }),

  vmmExited: (how: string, consoleTail?: string) =>
    new FcvmError('VMM_EXITED', `the VM stopped unexpectedly (${how})${consoleTail ? `; guest console ends with: ${consoleTail}` : ''}`, {
      hint: 'Run with FCVM_LOG=debug to see each step',
    }),

  qmp: (command: string, klass: string, desc: string) =>
    new FcvmError('QMP_ERROR', `QEMU refused "${command}": ${klass}: ${desc}`, {
      hint: 'This is a bug in fcvm or an unsupported QEMU; run with FCVM_LOG=debug and report it',
    }),

  agentTimeout: (what: string, seconds: number, consoleTail?: string) =>
    new FcvmError('AGENT_TIMEOUT', `${what} did not happen within ${seconds}s${consoleTail ? `; guest console ends with: ${consoleTail}` : ''}`, {
      hint: 'The guest may have failed to boot; run with FCVM_LOG=debug, or raise --boot-timeout on a slow host',
    }),

  agent: (method: string, code: string, message: string) =>
    new FcvmError('AGENT_ERROR', `guest agent failed "${method}": ${message} [${code}]`, {
      hint: 'Run with FCVM_LOG=debug to see the guest console',
    }),

  protocol: (what: string) =>
    new FcvmError('PROTOCOL', `the guest broke the host-guest protocol (${what}), so its VM was stopped`, {
      hint: 'Code running as root in the guest can do this; so can a guest agent from another fcvm version (run "fcvm setup" again)',
    }),

  containerFailed: (image: string, message: string) =>
    new FcvmError('CONTAINER_FAILED', `container from "${image}" could not start: ${message}`, {
      hint: 'Check the command and image; the guest\'s podman error is quoted above',
    }),

  stateCorrupt: (path: string, why: string) =>
    new FcvmError('STATE_CORRUPT', `state file ${path} is unreadable: ${why}`, {
      hint: 'Use the fcvm that wrote it, or remove the file if no fcvm process owns it',
    }),

  commandFailed: (command: string, detail: string, cause?: unknown) =>
    new FcvmError('COMMAND_FAILED', `"${command}" failed: ${detail}`, {
      hint: 'Make sure the tool is installed (see the README\'s install command)',
      cause,
    }),

  copyFailed: (message: string, hint = 'Check the paths: "fcvm cp NAME:PATH HOSTPATH" copies out, "fcvm cp HOSTPATH NAME:PATH" in') =>
    new FcvmError('COPY_FAILED', `cp: ${message}`, { hint }),

  snapshotNotFound: (tag: string) =>
    new FcvmError('SNAPSHOT_NOT_FOUND', `no snapshot tagged "${tag}"`, { hint: 'Run "fcvm snapshots" to list snapshots' }),

  snapshotExists: (tag: string) =>
    new FcvmError('SNAPSHOT_EXISTS', `a snapshot tagged "${tag}" already exists`, {
      hint: 'Choose another --tag, or delete it first with "fcvm snapshots delete TAG"',
    }),

  snapshotRefused: (vm: string, why: string, hint = 'Snapshot a VM started with "fcvm podman run" once "fcvm ls" shows it running or healthy') =>
    new FcvmError('SNAPSHOT_REFUSED', `VM "${vm}" cannot be snapshotted: ${why}`, { hint }),

  snapshotCorrupt: (tag: string, why: string) =>
    new FcvmError('SNAPSHOT_CORRUPT', `snapshot "${tag}" is corrupt or incomplete: ${why}`, {
      hint: 'Delete it with "fcvm snapshots delete TAG" and take it again from a running VM',
    }),

  snapshotInUse: (tag: string, by: string) =>
    new FcvmError('SNAPSHOT_IN_USE', `snapshot "${tag}" is in use by ${by}`, {
      hint: 'Stop its memory servers and clones first (see "fcvm snapshot ls")',
    }),

  serveNotFound: (pid: number) =>
    new FcvmError('SERVE_NOT_FOUND', `no snapshot server with pid ${pid}`, {
      hint: 'Run "fcvm snapshot ls" to see running servers, or start one with "fcvm snapshot serve TAG"',
    }),

  diskFull: (doing: string, where: string, cause?: unknown, hint?: string) =>
    new FcvmError('DISK_FULL', `no space left on the filesystem of ${where} while ${doing}`, {
      hint: hint ?? 'Free some space there (or in /dev/shm), or point --base-dir at a larger filesystem, and try again',
      cause,
    }),

  readOnly: (doing: string, where: string, cause?: unknown) =>
    new FcvmError('READ_ONLY', `${where} is on a read-only filesystem (while ${doing})`, {
      hint: 'Give fcvm a writable --base-dir (FCVM_BASE_DIR), or remount it read-write',
      cause,
    }),

  baseDirDenied: (baseDir: string, path: string, cause?: unknown) =>
    new FcvmError('BASE_DIR_DENIED', `permission denied at ${path}: the base directory ${baseDir} is not this user's (uid ${process.getuid?.() ?? '?'})`, {
      hint: 'Use a base directory of your own: unset FCVM_BASE_DIR (the default is /var/lib/fcvm for root, ~/.local/share/fcvm otherwise) or give --base-dir DIR',
      cause,
    }),

  noReflink: (path: string, why: string, cause?: unknown) =>
    new FcvmError('DISK_NO_REFLINK', `cannot make the copy-on-write disk ${path}: ${why}`, {
      hint: 'Firecracker takes raw disks, and fcvm never copies a whole disk per VM: put the base dir on btrfs or XFS, or run "fcvm setup --reflink-fs 20G" (as root) to create a loop-mounted btrfs for disks under the base dir',
      cause,
    }),

  reflinkFsUnmounted: (image: string, mount: string) =>
    new FcvmError('DISK_NO_REFLINK', `the reflink filesystem ${image} is not mounted at ${mount}`, {
      hint: 'Run any fcvm command as root once (it mounts it), or mount it yourself: mount -o loop,noatime IMAGE MOUNTPOINT',
    }),

  /** An fcvm error that another fcvm process (a supervisor) reported as code and line. */
  relayed: (code: string, line: string) =>
    new FcvmError(ERROR_CODES.includes(code as ErrorCode) ? (code as ErrorCode) : 'INTERNAL', line),

  interrupted: (signal: string, exitCode: number) =>
    new FcvmError('INTERRUPTED', `interrupted by ${signal}`, { exitCode }),
};

function truncate(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

/** The message of anything thrown. */
export function messageOf(e: unknown): string {
  if (e instanceof FcvmError) return e.oneLine();
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Whose podman storage images come from: root's is the host's; a user's is their own, as rootless podman's. */
function podmanStorage(uid = process.getuid?.() ?? 0): string {
  return uid === 0 ? 'the host\'s podman storage' : 'your podman storage (rootless: your own, not root\'s)';
}
