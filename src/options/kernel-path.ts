import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { errors } from '../errors/catalogue.js';

/** A --kernel value: an existing regular file, made absolute (the VMM runs elsewhere). */
export function parseKernelPath(value: string): string {
  const hint = 'Give the path of a kernel image, e.g. --kernel /boot/vmlinuz-$(uname -r)';
  if (!value) throw errors.invalidOption('--kernel', value, 'it is empty', hint);
  const path = resolve(value);
  let st;
  try {
    st = statSync(path);
  } catch {
    throw errors.invalidOption('--kernel', value, 'no such file', hint);
  }
  if (!st.isFile()) throw errors.invalidOption('--kernel', value, 'not a regular file', hint);
  return path;
}
