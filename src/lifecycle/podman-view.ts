import { formatMappings } from '../net/publish.js';
import type { VmListing } from '../state/list.js';
import type { VmState } from '../state/vm-state.js';
import { goMap } from '../util/go-template.js';
import { constants } from 'node:os';

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
    FinishedAt: finishedAt(l) ?? '0001-01-01T00:00:00Z',
    // podman's Health.Status is "" for a container without a health check, "starting" until its first passes.
    Health: { Status: !healthChecked(l) ? '' : l.status === 'running' ? 'starting' : l.status === 'healthy' || l.status === 'unhealthy' ? l.status : '', FailingStreak: 0, Log: null },
  };
}

/** When the VM's container ended (its `stopped` transition), if it did. Pure. */
function finishedAt(l: VmListing): string | undefined {
  return l.status === 'stopped' ? [...l.transitions].reverse().find((t) => t.status === 'stopped')?.at : undefined;
}

/** fcvm's `healthy` straight after `starting` is a container without a health check; `running` is one whose first check has not passed yet. Pure. */
function healthChecked(l: VmListing): boolean {
  return l.transitions.some((t) => t.status === 'running' || t.status === 'unhealthy');
}

/** Docker's and podman's words for a span of time (go-units' HumanDuration). Pure. */
export function humanDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const m = Math.floor(s / 60);
  const h = Math.round(s / 3600);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(h / 24 / 365)} years`;
}

/** podman ps's STATUS column: "Up 5 minutes", "Up 2 seconds (starting)", "Up 5 minutes (healthy)", "Exited (3) 2 seconds ago", "Created". */
export function podmanStatusText(l: VmListing, now = Date.now()): string {
  const since = (status: string) => {
    const at = [...l.transitions].reverse().find((t) => t.status === status)?.at;
    return Math.max(0, (now - Date.parse(at ?? l.createdAt)) / 1000);
  };
  switch (l.status) {
    case 'starting':
      return 'Created';
    case 'stopped':
      return `Exited (${l.exitCode ?? 0}) ${humanDuration(since('stopped'))} ago`;
    case 'stopping':
      return 'Stopping';
    default: {
      const started = l.transitions.find((t) => t.status !== 'starting')?.at ?? l.createdAt;
      const up = `Up ${humanDuration(Math.max(0, (now - Date.parse(started)) / 1000))}`;
      if (l.status === 'running') return `${up} (starting)`;
      return l.status === 'unhealthy' || healthChecked(l) ? `${up} (${l.status})` : up;
    }
  }
}

/** A row of `ps --format`: fcvm's listing, and podman's column names for it. */
export function podmanPsRow(l: VmListing, now = Date.now()): Record<string, unknown> {
  const finished = finishedAt(l);
  return {
    ...l,
    ID: l.name,
    Names: l.name,
    Command: (l.command ?? []).join(' '),
    State: podmanStatus(l.status),
    Status: podmanStatusText(l, now),
    // As podman's: since the container was created, whether it runs or ended.
    RunningFor: `${humanDuration(Math.max(0, (now - Date.parse(l.createdAt)) / 1000))} ago`,
    Pid: l.vmmPid ?? 0,
    ExitCode: l.exitCode ?? 0,
    ExitedAt: finished ? Math.floor(Date.parse(finished) / 1000) : 0,
    Ports: formatMappings(l.network.publish, '0.0.0.0').join(', '),
    Labels: goMap(l.labels),
    CreatedAt: l.createdAt,
  };
}

/**
 * A VM as `podman ps --format json` prints a container (podman's keys, beside fcvm's own),
 * so that `jq '.[].Names[0]'` and the like work. Its Id is its name, which every fcvm
 * command takes (as `.ID` in ps templates and `.Id` in inspect). Pure but for the clock.
 */
export function podmanPsJson(l: VmListing, now = Date.now()): Record<string, unknown> {
  const status = podmanStatus(l.status);
  const started = l.transitions.find((t) => t.status !== 'starting')?.at;
  const unix = (iso: string | undefined) => (iso ? Math.floor(Date.parse(iso) / 1000) : 0);
  return {
    ...l,
    Id: l.name,
    Names: [l.name],
    Image: l.image,
    Command: l.command ?? null,
    Created: unix(l.createdAt),
    CreatedAt: l.createdAt,
    StartedAt: unix(started),
    State: status,
    Status: podmanStatusText(l, now),
    Exited: status === 'exited',
    ExitCode: l.exitCode ?? 0,
    ExitedAt: unix(finishedAt(l)),
    Pid: l.vmmPid ?? 0,
    Labels: Object.keys(l.labels).length > 0 ? l.labels : null,
    Mounts: (l.volumes ?? []).map((v) => v.guest),
    Ports: l.network.publish.length > 0
      ? l.network.publish.map((m) => ({ host_ip: m.hostIp === '0.0.0.0' ? '' : m.hostIp, container_port: m.guestPort, host_port: m.hostPort, range: 1, protocol: m.proto }))
      : null,
  };
}

/** What podman inspect's Config, NetworkSettings, HostConfig and Mounts say that fcvm records. */
export type InspectSource = Pick<VmState, 'id' | 'name' | 'image' | 'createdAt' | 'plan' | 'labels' | 'network' | 'volumes' | 'memoryMiB' | 'vcpus'>;

/**
 * podman inspect's own objects, from a VM's state. The container's address is the one
 * the host reaches it at on every port (the namespace's end of its veth, bridged), or
 * none (rootless: slirp, as podman's own rootless containers show). Config.Env lists
 * no values: fcvm's state file keeps only the variables' names (it is readable by
 * others), so it is left out rather than shown wrong. Pure.
 */
export function podmanInspectFields(s: InspectSource): Record<string, unknown> {
  const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const m of s.network.publish) {
    const key = `${m.guestPort}/${m.proto}`;
    (ports[key] ??= []).push({ HostIp: m.hostIp === '0.0.0.0' ? '' : m.hostIp, HostPort: String(m.hostPort) });
  }
  const plan = s.plan;
  const mounts = (s.volumes ?? []).map((v) => ({ Type: 'bind', Source: v.host, Destination: v.guest, Mode: '', RW: !v.readOnly, Propagation: 'rprivate' }));
  return {
    // The name, which every fcvm command takes (the instance's own id is fcvm's `id`).
    Id: s.name,
    Created: s.createdAt,
    ImageName: s.image,
    Config: {
      Hostname: plan?.hostname ?? s.name,
      Image: s.image,
      Cmd: plan?.command ?? null,
      Entrypoint: plan?.entrypoint === undefined ? null : [plan.entrypoint],
      WorkingDir: plan?.workdir ?? '',
      User: plan?.user ?? '',
      Tty: plan?.tty ?? false,
      OpenStdin: plan?.interactive ?? false,
      Labels: goMap(s.labels ?? {}),
      StopTimeout: plan?.stopTimeout ?? 10,
      // What --stop-signal gave; empty without it: the image's own STOPSIGNAL (or SIGTERM) is the guest podman's to read.
      StopSignal: stopSignalOf(plan?.podmanOptions) ?? '',
    },
    NetworkSettings: {
      IPAddress: s.network.mode === 'bridged' ? (s.network.hostPath ?? '') : '',
      Ports: goMap(ports),
    },
    HostConfig: {
      NetworkMode: s.network.mode,
      PortBindings: goMap(ports),
      Binds: (s.volumes ?? []).map((v) => `${v.host}:${v.guest}:${v.readOnly ? 'ro' : 'rw'}`),
      Privileged: plan?.privileged ?? false,
      Memory: s.memoryMiB * 1024 * 1024,
      NanoCpus: s.vcpus * 1e9,
    },
    Mounts: mounts,
  };
}

/** The signal --stop-signal named (podman's passthrough word), as podman shows it: SIGNAME. Pure. */
export function stopSignalOf(words: readonly string[] | undefined): string | undefined {
  const v = words?.findLast((w) => w.startsWith('--stop-signal='))?.slice('--stop-signal='.length);
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Object.entries(constants.signals).find(([, n]) => n === Number(v))?.[0] ?? v;
  const name = v.toUpperCase();
  return name.startsWith('SIG') ? name : `SIG${name}`;
}

