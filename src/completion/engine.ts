/**
 * Shell completion, computed in one place for every shell: the scripts only hand the
 * words over (`fcvm __complete -- WORDS...`) and show what comes back. Pure: the
 * command tree and the dynamic names are inputs.
 */

/** What a word can be completed with. */
export type ValueKind =
  | { kind: 'vms' }
  /** Running VMs and those that ended and were kept (ps -a). */
  | { kind: 'kept' }
  | { kind: 'tags' }
  | { kind: 'images' }
  | { kind: 'files' }
  | { kind: 'dirs' }
  | { kind: 'choices'; values: readonly string[] }
  | { kind: 'none' };

/** A command as completion sees it (built from commander's, see fromCommander). */
export interface CompletionNode {
  names: string[];
  options: { flags: string[]; takesValue: boolean; optionalValue: boolean }[];
  subcommands: CompletionNode[];
  /** Positional kinds in order; the last repeats when `variadic`. */
  positionals: ValueKind[];
  variadic: boolean;
  /** After this many positionals, the rest is a command line of its own (podman run IMAGE CMD...). */
  restAfter: number | undefined;
  /** The value kind of an option, by any of its flags. */
  valueOf(flag: string): ValueKind;
}

/** Where completion names come from (VMs, snapshot tags, images). */
export interface NameSource {
  vms(): Promise<string[]>;
  /** Running VMs and those that ended and were kept. */
  kept(): Promise<string[]>;
  tags(): Promise<string[]>;
  images(): Promise<string[]>;
}

/** The answer: a mode for the shell, and candidates for mode "words". */
export interface Completion {
  mode: 'words' | 'files' | 'dirs';
  words: string[];
}

/**
 * Completes the last of `words` (the words after "fcvm", the last being the one under
 * the cursor, maybe empty).
 */
export async function complete(root: CompletionNode, words: readonly string[], names: NameSource): Promise<Completion> {
  const cur = words.at(-1) ?? '';
  let node = root;
  let positionals = 0;
  let pendingValue: string | undefined;
  let rest = false;
  for (const w of words.slice(0, -1)) {
    if (pendingValue !== undefined) {
      pendingValue = undefined;
      continue;
    }
    if (rest) continue;
    if (w === '--') {
      rest = true;
      continue;
    }
    if (w.startsWith('-') && w.length > 1) {
      const flag = w.includes('=') ? w.slice(0, w.indexOf('=')) : w;
      const opt = findOption(node, flag);
      if (opt?.takesValue && !opt.optionalValue && !w.includes('=')) pendingValue = flag;
      continue;
    }
    const sub = positionals === 0 ? node.subcommands.find((s) => s.names.includes(w)) : undefined;
    if (sub) {
      node = sub;
      continue;
    }
    positionals++;
    if (node.restAfter !== undefined && positionals >= node.restAfter) rest = true;
  }
  const filter = (xs: readonly string[]) => ({ mode: 'words' as const, words: [...new Set(xs)].filter((x) => x.startsWith(cur)).sort() });
  if (pendingValue !== undefined) return valueCompletion(node.valueOf(pendingValue), cur, names, filter);
  if (rest) return { mode: 'words', words: [] };
  if (cur.startsWith('-')) {
    return filter(node.options.flatMap((o) => o.flags.filter((f) => f.startsWith('--') || cur.length <= 1 || !cur.startsWith('--'))));
  }
  const kind = node.positionals[positionals] ?? (node.variadic ? node.positionals.at(-1) : undefined);
  const subs = positionals === 0 ? node.subcommands.flatMap((s) => s.names) : [];
  if (!kind) return filter(subs);
  const values = await valueCompletion(kind, cur, names, filter);
  return values.mode === 'words' ? filter([...subs, ...values.words]) : values;
}

function findOption(node: CompletionNode, flag: string) {
  return node.options.find((o) => o.flags.includes(flag));
}

async function valueCompletion(kind: ValueKind, cur: string, names: NameSource, filter: (xs: readonly string[]) => Completion): Promise<Completion> {
  switch (kind.kind) {
    case 'vms':
      return filter(await names.vms());
    case 'kept':
      return filter(await names.kept());
    case 'tags':
      return filter(await names.tags());
    case 'images':
      return filter(await names.images());
    case 'choices':
      return filter(kind.values);
    case 'files':
      return { mode: 'files', words: [] };
    case 'dirs':
      return { mode: 'dirs', words: [] };
    default:
      void cur;
      return { mode: 'words', words: [] };
  }
}

/** The lines `fcvm __complete` prints: the mode, then one candidate per line. Pure. */
export function formatCompletion(c: Completion): string {
  return [c.mode, ...c.words].join('\n') + '\n';
}
