import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';

/** What networking a test could leave behind, counted. */
export function netSnapshot(): { netns: number; links: number; rules: number } {
  const out = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
  return {
    netns: out('ip', ['netns', 'list']).split('\n').filter((l) => l.startsWith('fcvm-')).length,
    links: out('ip', ['-o', 'link', 'show']).split('\n').filter((l) => /^\d+: fcvm/.test(l)).length,
    rules: out('iptables-save', []).split('\n').filter((l) => l.includes('fcvm:')).length,
  };
}

/** GET http://host:port/ from the host; resolves with the body or rejects. */
export function httpGet(host: string, port: number, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A TCP server on the host's loopback that answers every connection with `reply`. */
export async function loopbackService(reply: string): Promise<{ port: number; server: Server }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.end(`HTTP/1.0 200 OK\r\n\r\n${reply}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, server };
}

/** A free TCP port on the host. */
export async function freePort(): Promise<number> {
  const { port, server } = await loopbackService('');
  await new Promise((r) => server.close(r));
  return port;
}
