/**
 * Throws the reason of the first rejected result, if any: a command over several VMs
 * tries them all, reports what it could, then fails with the first error. Pure.
 */
export function firstFailure(results: readonly PromiseSettledResult<unknown>[]): void {
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
