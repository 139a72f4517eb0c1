import { formatMappings } from '../net/publish.js';
import type { VmListing } from '../state/list.js';

/**
 * podman's names for a VM's state, beside fcvm's own, so that what podman users read
 * (`inspect --format '{{.State.Status}}'`, `ps --format '{{.Names}} {{.Ports}}'`) means
 * the same here. Pure.
 */

/** podman's container status for an fcvm status: the container exists once the VM runs it. */
export function podmanStatus(status: VmListing['status']): string {
  switch (status) {
    case 'starting':
      return 'created';
    case 'stopping':
      return 'stopping';
    case 'stopped':
      return 'exited';
    default:
      return 'running';
  }
}

/** The State object of `podman inspect`. Pid is the VMM's: the host process that runs the container. */
export function podmanState(l: VmListing): Record<string, unknown> {
  const status = podmanStatus(l.status);
  const started = l.transitions.find((t) => t.status !== 'starting')?.at;
  return {
    Status: status,
    Running: status === 'running',
    Paused: false,
    Pid: l.vmmPid ?? 0,
    ExitCode: l.exitCode ?? 0,
    StartedAt: started ?? '0001-01-01T00:00:00Z',
    ...(l.status === 'healthy' || l.status === 'unhealthy' ? { Health: { Status: l.status } } : {}),
  };
}

/** A row of `ps --format`: fcvm's listing, and podman's column names for it. */
export function podmanPsRow(l: VmListing): Record<string, unknown> {
  return {
    ...l,
    ID: l.name,
    Names: l.name,
    State: podmanStatus(l.status),
    Ports: formatMappings(l.network.publish, '0.0.0.0').join(', '),
    CreatedAt: l.createdAt,
  };
}
