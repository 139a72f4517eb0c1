import { open, stat, truncate } from 'node:fs/promises';

/** Console lines that explain a failure better than whatever came last. */
const KEY_LINE = /Kernel panic|fcvm-init:|fcvm-stage2:|fcvm-agent: fatal|Out of memory|BUG:|Oops/;

/**
 * The last `lines` non-empty lines of a guest console log joined with " | ", led by the
 * first key line (a kernel panic, an init failure) when the tail does not show it.
 */
export async function consoleTail(path: string, lines = 5): Promise<string | undefined> {
  // The start (boot messages, a panic) and the end: a guest may have written gigabytes.
  const text = await readEnds(path, 64 * 1024).catch(() => '');
  return summarizeConsole(text, lines);
}

/** The first and last `n` bytes of a file (all of it when smaller), as text. */
async function readEnds(path: string, n: number): Promise<string> {
  const f = await open(path, 'r');
  try {
    const { size } = await f.stat();
    if (size <= 2 * n) return (await f.read(Buffer.alloc(size), 0, size, 0)).buffer.toString('utf8');
    const head = (await f.read(Buffer.alloc(n), 0, n, 0)).buffer.toString('utf8');
    const tail = (await f.read(Buffer.alloc(n), 0, n, size - n)).buffer.toString('utf8');
    return `${head}\n${tail}`;
  } finally {
    await f.close();
  }
}

/** Most a console log may grow to before it is cut. */
export const CONSOLE_MAX_BYTES = 8 << 20;

/**
 * Keeps a console log (appended to by the VMM, opened with O_APPEND) under `maxBytes`:
 * a guest that floods its serial port must not fill the host's disk. Past the limit the
 * log keeps its first and last 64 KiB with a note of what was cut. Returns a stopper.
 */
export function boundConsoleLog(path: string, maxBytes = CONSOLE_MAX_BYTES, everyMs = 2000): () => void {
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const { size } = await stat(path);
      if (size > maxBytes) {
        const ends = await readEnds(path, 64 * 1024);
        await truncate(path, 0);
        const f = await open(path, 'a');
        await f.write(`${ends.slice(0, ends.length / 2)}\n[fcvm: ${size} bytes of console output cut here]\n${ends.slice(ends.length / 2)}`);
        await f.close();
      }
    } catch {
      // gone with its run directory
    } finally {
      busy = false;
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
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
