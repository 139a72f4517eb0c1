import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { baseDir, deadVmCgroups, layout, ownShmFiles, vmmPids } from './helpers.js';
import { deadJailIdClaims } from '../src/jail/id-registry.js';

/**
 * Everything a VM or server of this base directory can leave on the host, by kind.
 * Resources named after a VM id ("HEX-PID-START") count when their owner is dead or
 * runs with this base directory: other checkouts' VMs on the machine are not ours.
 */
export function leftovers(): Record<string, string[]> {
  const ns = readdirSync('/run/netns', { withFileTypes: true }).map((d) => d.name).filter((n) => n.startsWith('fcvm-') && ownsId(n.slice(5)));
  const save = execFileSync('iptables-save', { encoding: 'utf8' });
  const rules = save.split('\n').filter((l) => {
    const id = l.match(/fcvm:([0-9a-z-]+)/)?.[1];
    return id !== undefined && ownsId(id);
  });
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n')
    .map((l) => l.match(/^\d+: (fcvm[0-9a-f]{6})[@:]/)?.[1]).filter((n): n is string => n !== undefined)
    // A host veth lives as long as its peer's namespace: ours if that namespace is ours or gone.
    .filter((veth) => {
      const owner = readdirSync('/run/netns').find((n) => n.startsWith(`fcvm-${veth.slice(4)}`));
      return owner === undefined || ownsId(owner.slice(5));
    });
  const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')) : []);
  const partial = existsSync(layout.snapshots) ? readdirSync(layout.snapshots).filter((f) => f.endsWith('.partial') || f.endsWith('.tmp')) : [];
  return {
    processes: [...vmmPids().map(String), ...fcvmProcesses(), ...jailLaunchers()],
    netns: ns,
    veths: links,
    iptablesRules: rules,
    ramFiles: ownShmFiles(),
    runDirs: list(layout.vmRuntime),
    stateFiles: list(layout.vmState),
    serverFiles: list(layout.serveState),
    partialSnapshots: partial,
    // The jail's own resources: VM cgroups and claimed jail uids whose owner is gone.
    cgroups: deadVmCgroups(),
    jailIdClaims: deadJailIdClaims().map(String),
  };
}

/** The number of leftovers of each kind, with the names for a failure message. */
export function leftoverCounts(): { total: number; detail: string } {
  const l = leftovers();
  const total = Object.values(l).reduce((n, v) => n + v.length, 0);
  return { total, detail: JSON.stringify(Object.fromEntries(Object.entries(l).filter(([, v]) => v.length > 0))) };
}

/** fcvm CLI processes (supervisors, servers) of this base directory. */
function fcvmProcesses(): string[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid).filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      // The script node runs (also behind runuser), not any argument that names it (a
      // build's `sh -c '... chmod +x dist/fcvm.mjs'` is no fcvm process).
      return argv.some((a, i) => a.endsWith('/fcvm.mjs') && i > 0 && /(^|\/)node$/.test(argv[i - 1]!)) && baseOf(pid) === baseDir;
    } catch {
      return false;
    }
  });
}

/** bubblewrap (and the nsenter in front of it) that launched a VMM of this base directory. */
function jailLaunchers(): string[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return /(^|\/)(bwrap|nsenter)$/.test(argv[0]!) && argv.some((a) => a.startsWith(layout.vmRuntime));
    } catch {
      return false;
    }
  }).map((pid) => `${pid} (jail launcher)`);
}

function baseOf(pid: string): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8');
    const flag = argv.indexOf('--base-dir');
    const fromEnv = env.match(/(?:^|\0)FCVM_BASE_DIR=([^\0]*)/)?.[1];
    return resolve(flag >= 0 ? argv[flag + 1]! : fromEnv || '/var/lib/fcvm');
  } catch {
    return undefined;
  }
}

/** True if the VM id's owner is dead (a leftover is anybody's) or runs with this base directory. */
function ownsId(id: string): boolean {
  const pid = id.split('-')[1];
  if (!pid || !existsSync(`/proc/${pid}`)) return true;
  const b = baseOf(pid);
  return b === undefined || b === baseDir;
}
