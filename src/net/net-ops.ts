import { readdir, writeFile } from 'node:fs/promises';
import { run } from '../util/exec.js';
import type { Rule } from './rules.js';

/**
 * Network effects of the host, behind one narrow interface named after the OS
 * concepts. Commands are batched (`ip -batch`, `iptables-restore --noflush`) because
 * each process start costs more than the work.
 */
export interface NetOps {
  addNetns(name: string): Promise<void>;
  deleteNetns(name: string): Promise<void>;
  listNetns(): Promise<string[]>;
  /** Runs `ip` commands (one per line, without the leading "ip"), optionally inside a namespace. */
  ipBatch(lines: readonly string[], netns?: string): Promise<void>;
  /** Adds (or deletes) rules in one transaction, optionally inside a namespace. */
  iptablesApply(rules: readonly Rule[], netns?: string): Promise<void>;
  iptablesSave(): Promise<string>;
  /** Sets a sysctl under /proc/sys, e.g. "net/ipv4/ip_forward", optionally inside a namespace. */
  sysctl(key: string, value: string, netns?: string): Promise<void>;
}

const inNs = (netns: string | undefined, cmd: string[]) => (netns ? ['ip', ['netns', 'exec', netns, ...cmd]] : [cmd[0]!, cmd.slice(1)]) as [string, string[]];

/** iptables-restore input for rules given as add/insert/delete argument vectors. Pure. */
export function restoreScript(rules: readonly Rule[]): string {
  const out: string[] = [];
  for (const table of ['nat', 'filter'] as const) {
    const mine = rules.filter((r) => r.table === table);
    if (mine.length === 0) continue;
    out.push(`*${table}`, ...mine.map((r) => r.args.map((a) => (/[\s"]/.test(a) ? `"${a.replace(/"/g, '\\"')}"` : a)).join(' ')), 'COMMIT');
  }
  return out.join('\n') + '\n';
}

export const hostNetOps: NetOps = {
  addNetns: async (name) => void (await run('ip', ['netns', 'add', name])),
  deleteNetns: async (name) => void (await run('ip', ['netns', 'delete', name])),
  // The names `ip netns` keeps under /run/netns: read directly, without a process.
  listNetns: async () => readdir('/run/netns').catch(() => [] as string[]),
  ipBatch: async (lines, netns) => {
    if (lines.length === 0) return;
    await run('ip', [...(netns ? ['-n', netns] : []), '-batch', '-'], { input: lines.join('\n') + '\n' });
  },
  iptablesApply: async (rules, netns) => {
    if (rules.length === 0) return;
    const [cmd, args] = inNs(netns, ['iptables-restore', '--noflush', '--wait']);
    await run(cmd, args, { input: restoreScript(rules) });
  },
  iptablesSave: () => run('iptables-save', []),
  sysctl: async (key, value, netns) => {
    if (!netns) return writeFile(`/proc/sys/${key}`, value);
    const [cmd, args] = inNs(netns, ['sysctl', '-q', '-w', `${key.replace(/\//g, '.')}=${value}`]);
    await run(cmd, args);
  },
};
