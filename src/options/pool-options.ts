import { errors } from '../errors/catalogue.js';
import type { SnapshotMeta } from '../snapshot/store.js';
import type { PoolNetwork } from '../vm/pool-network.js';
import { parseChoice } from './parse.js';
import type { CloneRawFlags } from './clone-options.js';

/** The most clones one server keeps warm: each is a VM with its own VMM and supervisor. */
export const MAX_POOL = 64;

export interface PoolFlags {
  pool?: string;
  network?: string;
}

/** `snapshot serve --pool N [--network MODE]` as options; undefined without --pool. Pure. */
export function poolFromFlags(f: PoolFlags, isRoot = (process.getuid?.() ?? 0) === 0): { size: number; network: PoolNetwork | undefined } | undefined {
  if (f.pool === undefined) {
    if (f.network !== undefined) throw errors.usage('--network is the network of pooled clones: it needs --pool', 'Add --pool N, or leave --network out');
    return undefined;
  }
  const size = Number(f.pool);
  if (!/^\d+$/.test(f.pool) || size < 1 || size > MAX_POOL) {
    throw errors.invalidOption('--pool', f.pool, `it must be a whole number from 1 to ${MAX_POOL}`, 'Give how many clones to keep ready, e.g. --pool 4');
  }
  const network = f.network === undefined ? undefined : parseChoice('--network', f.network, ['bridged', 'rootless', 'none'] as const);
  if (network === 'bridged' && !isRoot) throw errors.invalidOption('--network', 'bridged', 'bridged networking needs root (namespaces, veth, iptables)', 'Use --network rootless, or run as root');
  return { size, network };
}

/** The network a clone of `meta` gets: its --network, else its source's (rootless for non-root). Pure. */
export function cloneNetwork(meta: Pick<SnapshotMeta, 'plan'>, raw: Pick<CloneRawFlags, 'network'>, isRoot = (process.getuid?.() ?? 0) === 0): string {
  const source = meta.plan.network.mode;
  return raw.network ?? (source === 'bridged' && !isRoot ? 'rootless' : source);
}

/** Why a pool with clones on `network` cannot hand one out for these flags, or undefined. Pure. */
export function unpoolable(network: PoolNetwork, meta: Pick<SnapshotMeta, 'plan'>, raw: CloneRawFlags): string | undefined {
  const want = cloneNetwork(meta, raw);
  if (want !== network) return `the pool's clones have --network ${network}, not ${want}`;
  if (raw.jail === false) return 'a pooled clone runs in its jail (--no-jail starts a clone of its own)';
  if (raw.interactive && !raw.exec) return 'a pooled clone attaches no container stdin';
  if (raw.tty && !raw.exec) return 'a pooled clone attaches no container terminal';
  return undefined;
}
