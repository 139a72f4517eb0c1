/**
 * Failpoints, for tests that kill fcvm at a chosen moment: FCVM_FAILPOINT=NAME:kill
 * makes the process SIGKILL itself when it reaches the point NAME (a boot or restore
 * step once it is done, "step:NAME", or an explicit point such as "snapshot:paused").
 * Nothing happens without the variable; the check is a string comparison.
 */
export function failpoint(name: string, env: NodeJS.ProcessEnv = process.env): void {
  const spec = env.FCVM_FAILPOINT;
  if (!spec) return;
  const at = spec.lastIndexOf(':');
  if (spec.slice(0, at) !== name) return;
  const action = spec.slice(at + 1);
  if (action === 'kill') {
    process.stderr.write(`fcvm: failpoint ${name}: SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}

/** Every failpoint outside the step runner, so a test can walk them all. */
export const FAILPOINTS = {
  snapshot: ['snapshot:trimmed', 'snapshot:prepared', 'snapshot:paused', 'snapshot:saved', 'snapshot:resumed', 'snapshot:complete'],
  serve: ['serve:verified', 'serve:listening', 'serve:announced', 'serve:attach'],
  network: ['net:netns', 'net:veth', 'net:namespace-rules'],
} as const;
