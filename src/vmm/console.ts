import { readFile } from 'node:fs/promises';

/** Console lines that explain a failure better than whatever came last. */
const KEY_LINE = /Kernel panic|fcvm-init:|fcvm-stage2:|fcvm-agent: fatal|Out of memory|BUG:|Oops/;

/**
 * The last `lines` non-empty lines of a guest console log joined with " | ", led by the
 * first key line (a kernel panic, an init failure) when the tail does not show it.
 */
export async function consoleTail(path: string, lines = 5): Promise<string | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return summarizeConsole(text, lines);
}

/** Pure part of consoleTail. */
export function summarizeConsole(text: string, lines = 5): string | undefined {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
  const all = clean.split('\n').map((l) => l.trim()).filter(Boolean);
  const tail = all.slice(-lines);
  const key = all.find((l) => KEY_LINE.test(l));
  const parts = key && !tail.includes(key) ? [key, '...', ...tail] : tail;
  return parts.length > 0 ? parts.join(' | ') : undefined;
}
