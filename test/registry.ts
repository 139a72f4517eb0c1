import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net-helpers.js';

/** What a registry test needs on the host, or why it cannot run. */
export function registryUnavailableReason(): string | undefined {
  for (const bin of ['/usr/bin/docker-registry', '/usr/bin/htpasswd', '/usr/bin/openssl', '/usr/bin/skopeo', '/usr/bin/setpriv']) {
    if (!existsSync(bin)) return `needs ${bin} (scripts/install.sh installs it)`;
  }
  return undefined;
}

/** A real OCI registry (Debian's docker-registry) on the host's loopback, for one test. */
export interface TestRegistry {
  port: number;
  /** How a bridged guest names it: through its gateway, which leads to the host's loopback. */
  guestHost: string;
  /** A directory holding the registry's CA as ca.crt (for --cert-dir), when it has TLS. */
  caDir: string | undefined;
  /** Copies another image of the host's podman storage into it, as `repo`. */
  push(image: string, repo: string): void;
  stop(): Promise<void>;
}

/** Makes a CA and a server certificate for 172.30.0.1 and 127.0.0.1 in `dir`. */
function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=fcvm test CA', '-days', '2', '-keyout', 'ca.key', '-out', 'ca.crt');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=172.30.0.1', '-keyout', 'server.key', '-out', 'server.csr',
    '-addext', 'subjectAltName=IP:172.30.0.1,IP:127.0.0.1');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'server.crt', '-copy_extensions', 'copy');
}

/**
 * Starts docker-registry on 127.0.0.1 with plain HTTP, or with TLS from a CA of its own
 * and, with `auth`, htpasswd basic auth. Pushes `image` from the host's podman storage
 * as `repo`.
 */
export async function startRegistry(opts: { tls: boolean; auth?: { user: string; password: string }; image: string; repo: string }): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'fcvm-it-registry-'));
  const port = await freePort();
  let caDir: string | undefined;
  if (opts.tls) {
    makeCerts(dir);
    caDir = join(dir, 'ca');
    mkdirSync(caDir);
    execFileSync('cp', [join(dir, 'ca.crt'), join(caDir, 'ca.crt')]);
  }
  if (opts.auth) writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', opts.auth.user, opts.auth.password]));
  const config = [
    'version: 0.1',
    'log: {level: error}',
    `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}}`,
    `http:`,
    `  addr: 127.0.0.1:${port}`,
    ...(opts.tls ? [`  tls: {certificate: ${join(dir, 'server.crt')}, key: ${join(dir, 'server.key')}}`] : []),
    ...(opts.auth ? [`auth: {htpasswd: {realm: fcvm-test, path: ${join(dir, 'htpasswd')}}}`] : []),
  ].join('\n');
  writeFileSync(join(dir, 'config.yml'), `${config}\n`);
  // setpriv --pdeathsig: the registry goes with the test process, even one that is killed.
  const proc: ChildProcess = spawn('setpriv', ['--pdeathsig', 'TERM', '--', 'docker-registry', 'serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const push = (image: string, repo: string) => execFileSync('skopeo', [
    'copy', '--quiet', ...(opts.tls ? ['--dest-cert-dir', caDir!] : ['--dest-tls-verify=false']),
    ...(opts.auth ? ['--dest-creds', `${opts.auth.user}:${opts.auth.password}`] : []),
    `containers-storage:${image}`, `docker://127.0.0.1:${port}/${repo}`,
  ], { stdio: 'pipe' });
  const stop = async () => {
    proc.kill('SIGTERM');
    if (proc.exitCode === null) await new Promise((r) => proc.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Push once it answers; skopeo retries nothing, so wait for the port first.
    const end = Date.now() + 15_000;
    for (;;) {
      try {
        push(opts.image, opts.repo);
        break;
      } catch (e) {
        if (Date.now() > end || proc.exitCode !== null) throw new Error(`the test registry did not take the image: ${(e as { stderr?: Buffer }).stderr ?? e}; registry: ${stderr}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, guestHost: `172.30.0.1:${port}`, caDir, push: (image, repo) => void push(image, repo), stop };
}
