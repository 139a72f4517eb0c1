/** A file-system operation's failure: the errno the guest gets. */
export class FsError extends Error {
  override name = 'FsError';
  constructor(readonly errno: number, message?: string) {
    super(message ?? `errno ${errno}`);
  }
}

/** Throws FsError for a negative syscall result; returns a non-negative one. */
export function check(r: number, what?: string): number {
  if (r < 0) throw new FsError(-r, what);
  return r;
}
