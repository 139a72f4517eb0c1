import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { errors } from '../errors/catalogue.js';
import type { CleanupStack } from '../util/cleanup-stack.js';
import { run, which } from '../util/exec.js';
import { connectUnix } from '../util/unix-socket.js';
import { GATEWAY_MAC } from './addressing.js';
import { restoreScript } from './net-ops.js';
import type { PortMapping } from './publish.js';
import type { Rule } from './rules.js';

/**
 * Rootless networking for a VMM that takes TAP devices only (Firecracker): a user and
 * network namespace of the user's own holds the VM's TAP, and slirp4netns gives that
 * namespace the host's network from user space (no privilege, no host interface).
 * Inside, the namespace routes and NATs between the TAP (the guest, 172.30.0.2 behind
 * gateway 172.30.0.1, as in bridged mode) and slirp4netns' interface (10.0.2.100);
 * published ports are slirp4netns host forwards, DNATed on to the guest. The guest
 * reaches the host's loopback through its gateway, as in the other modes.
 */
export const ROOTLESS_TAP = {
  tap: 'tap0',
  gatewayIp: '172.30.0.1',
  guestIp: '172.30.0.2',
  prefix: 30,
  slirpDev: 'slirp0',
  slirpIp: '10.0.2.100',
  /** slirp4netns' alias for the host's loopback, and its DNS forwarder. */
  hostLoopback: '10.0.2.2',
  dns: '10.0.2.3',
} as const;

export interface RootlessTap {
  /** A process in the user and network namespaces: the VMM joins them through it. */
  nsPid: number;
  tap: string;
}

/** Commands inside the namespaces of `pid`, as that user namespace's root. */
export function nsenterArgs(pid: number): string[] {
  return ['nsenter', '--preserve-credentials', '--user', '--net', '--target', String(pid), '--'];
}

/** The rules inside the namespace: NAT to slirp4netns, the host's loopback, published ports. Pure. */
export function rootlessRules(publish: readonly PortMapping[], extraPorts: readonly number[] = []): Rule[] {
  const a = ROOTLESS_TAP;
  const rules: Rule[] = [
    { table: 'nat', args: ['-A', 'POSTROUTING', '-o', a.slirpDev, '-j', 'MASQUERADE'] },
    { table: 'nat', args: ['-A', 'PREROUTING', '-i', a.tap, '-d', a.gatewayIp, '-j', 'DNAT', '--to-destination', a.hostLoopback] },
  ];
  const ports = [...publish.map((m) => ({ proto: m.proto, port: m.guestPort })), ...extraPorts.map((p) => ({ proto: 'tcp' as const, port: p }))];
  for (const { proto, port } of ports) {
    rules.push({ table: 'nat', args: ['-A', 'PREROUTING', '-i', a.slirpDev, '-p', proto, '--dport', String(port), '-j', 'DNAT', '--to-destination', `${a.guestIp}:${port}`] });
  }
  return rules;
}

/** Starts a long-lived helper with pdeathsig, registered for killing on cleanup. */
function startHelper(name: string, argv: string[], cleanup: CleanupStack): ChildProcess {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  child.on('exit', () => (exited = true));
  child.on('error', () => (exited = true));
  cleanup.push(`stop ${name}`, async () => {
    if (exited) return;
    child.kill('SIGKILL');
    await once(child, 'exit').catch(() => {});
  });
  return child;
}

/** Waits until the helper's stdout matches `ready` (a line, or slirp4netns' ready byte). */
async function readyOn(child: ChildProcess, ready: RegExp, what: string, timeoutMs: number): Promise<string> {
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d).slice(-2000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms${err ? `: ${err.trim()}` : ''}`)), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      out += d;
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code})${err ? `: ${err.trim().split('\n').pop()}` : ''}`));
    });
  });
}

/** One request to slirp4netns' API socket (JSON in, JSON out). */
async function slirpApi(socket: string, request: object): Promise<unknown> {
  const s = await connectUnix(socket);
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (d) => (text += d));
    s.on('error', reject);
    s.on('end', () => {
      try {
        const r = JSON.parse(text) as { error?: { desc?: string } };
        if (r.error) reject(new Error(r.error.desc ?? JSON.stringify(r.error)));
        else resolve(r);
      } catch (e) {
        reject(e);
      }
    });
    s.end(JSON.stringify(request));
  });
}

/**
 * Builds the namespaces, the TAP, slirp4netns and the forwards, each registered for
 * undoing on `cleanup`. `forwards` are host ports (published ones, and the health
 * port on the VM's own loopback address) to forward into the guest.
 */
export async function setupRootlessTap(o: {
  runDir: string;
  publish: readonly PortMapping[];
  /** Extra host forwards: the VM's own loopback address and the health port. */
  extra: { hostIp: string; port: number }[];
}, cleanup: CleanupStack): Promise<RootlessTap> {
  for (const cmd of ['unshare', 'nsenter', 'slirp4netns']) {
    if (!(await which(cmd))) throw errors.preflight(`command ${cmd}`, 'not found on PATH', `Install it: apt-get install -y ${cmd === 'slirp4netns' ? 'slirp4netns' : 'util-linux'}`);
  }
  // The holder: unshare(2) and exec, so its PID is in the new namespaces.
  const holder = startHelper('the network namespace holder', ['unshare', '--user', '--map-root-user', '--net', '--', 'sh', '-c', 'echo ready; exec sleep infinity'], cleanup);
  try {
    await readyOn(holder, /ready\n/, 'the namespace holder (unshare)', 10_000);
  } catch (e) {
    throw errors.preflight('user namespaces', (e as Error).message, 'Rootless networking needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)');
  }
  const nsPid = holder.pid!;
  const a = ROOTLESS_TAP;
  const inNs = nsenterArgs(nsPid);
  try {
    await run(inNs[0]!, [...inNs.slice(1), 'ip', '-batch', '-'], {
      input: [
        'link set lo up',
        `tuntap add dev ${a.tap} mode tap`,
        `link set dev ${a.tap} address ${GATEWAY_MAC}`,
        `addr add ${a.gatewayIp}/${a.prefix} dev ${a.tap}`,
        `link set ${a.tap} up`,
      ].join('\n') + '\n',
    });
    await run(inNs[0]!, [...inNs.slice(1), 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
  } catch (e) {
    throw errors.preflight('the VM\'s TAP device', (e as Error).message, 'Rootless Firecracker needs /dev/net/tun to be usable by you (Debian makes it mode 0666)');
  }
  const apiSocket = join(o.runDir, 'slirp4netns.sock');
  const slirp = startHelper('slirp4netns', ['slirp4netns', '--configure', '--mtu=65520', '--ready-fd=1', '--api-socket', apiSocket, String(nsPid), a.slirpDev], cleanup);
  // --ready-fd=1: slirp4netns writes "1" to its stdout once the namespace is configured.
  await readyOn(slirp, /1/, 'slirp4netns', 10_000);
  const rules = rootlessRules(o.publish, o.extra.map((x) => x.port));
  await run(inNs[0]!, [...inNs.slice(1), 'iptables-restore', '--noflush'], { input: restoreScript(rules) });
  for (const m of o.publish) {
    await slirpApi(apiSocket, { execute: 'add_hostfwd', arguments: { proto: m.proto, host_addr: m.hostIp, host_port: m.hostPort, guest_addr: a.slirpIp, guest_port: m.guestPort } });
  }
  for (const x of o.extra) {
    await slirpApi(apiSocket, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: x.hostIp, host_port: x.port, guest_addr: a.slirpIp, guest_port: x.port } });
  }
  return { nsPid, tap: a.tap };
}
