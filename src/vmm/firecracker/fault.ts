import { FcvmError } from '../../errors/fcvm-error.js';

/**
 * Firecracker's fault_message, mapped onto the catalogue: a FIRECRACKER_API error that
 * quotes the request and Firecracker's words, with a hint chosen by what they say.
 */
const HINTS: [RegExp, string][] = [
  [/kvm|\/dev\/kvm/i, 'Firecracker needs a usable /dev/kvm: load kvm_intel or kvm_amd and check its permissions, or use --hypervisor qemu'],
  [/userfault|uffd|page fault handler|backend/i, 'The snapshot\'s memory server did not take the connection; check that "fcvm snapshot serve" is running'],
  [/no such file|not found|os error 2\b/i, 'A file Firecracker was given is missing; run "fcvm setup" if an artifact was removed'],
  [/permission denied|os error 13\b/i, 'Firecracker may not open a file it was given; check the base dir\'s permissions'],
  [/tap|tun/i, 'The VM\'s TAP device could not be opened; check /dev/net/tun and that no other process holds the device'],
  [/snapshot|state file|version/i, 'The snapshot does not fit this Firecracker (a snapshot loads only in the Firecracker version that took it); take it again'],
  [/unknown field|invalid type|missing field/i, 'This fcvm sent a field this Firecracker does not know: report it with "firecracker --version"'],
];

export function faultError(request: string, status: number, fault: string): FcvmError {
  const line = fault.replace(/\s+/g, ' ').trim().slice(0, 400);
  const hint = HINTS.find(([re]) => re.test(line))?.[1] ?? 'Run with FCVM_LOG=debug to see every API request, and check Firecracker\'s log in the VM\'s directory';
  return new FcvmError('FIRECRACKER_API', `Firecracker refused ${request} (HTTP ${status}): ${line}`, { hint, detail: { request, status, fault: line } });
}
