import { findVirtioPort } from '../port-link.js';
import { HOSTILE_CASES } from './cases.js';
import { RawPeer } from './peer.js';

/**
 * A hostile guest agent, for tests of the host's defences. Started by stage 2 instead
 * of the agent when the kernel command line has fcvm.agent=hostile:CASE; it does what
 * CASE says on the agent port, then idles, so that whatever ends the VM is the host.
 */
const log = (msg: string) => process.stdout.write(`fcvm-hostile: ${msg}\n`);

async function main(): Promise<void> {
  const name = process.argv[2] ?? '';
  const act = (HOSTILE_CASES as Record<string, (p: RawPeer) => Promise<void>>)[name];
  if (!act) throw new Error(`unknown case "${name}"; cases: ${Object.keys(HOSTILE_CASES).join(', ')}`);
  let port: string | undefined;
  while (!(port = findVirtioPort('fcvm.agent'))) await new Promise((r) => setTimeout(r, 10));
  log(`case ${name} on ${port}`);
  await act(new RawPeer(port));
  log(`case ${name} done`);
  setInterval(() => {}, 1 << 30);
}

main().catch((e) => {
  log(`failed: ${(e as Error).stack ?? e}`);
  setInterval(() => {}, 1 << 30);
});
