import { readFile } from 'node:fs/promises';

/** The last `lines` non-empty lines of a guest console log, joined with " | ", or undefined. */
export async function consoleTail(path: string, lines = 5): Promise<string | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
  const tail = clean.split('\n').map((l) => l.trim()).filter(Boolean).slice(-lines);
  return tail.length > 0 ? tail.join(' | ') : undefined;
}
