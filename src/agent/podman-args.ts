import type { ContainerRun } from '../protocol/api.js';

/** Where the agent asks podman to write the container's PID; its appearance means "started". */
export const PIDFILE = '/run/fcvm/container.pid';
/** Where the agent mounts volume N in the guest; podman binds it into the container. */
export const volumeMountPoint = (index: number) => `/run/fcvm/volumes/${index}`;

/** Where podman writes the container's full ID, which `crun exec` needs. */
export const CIDFILE = '/run/fcvm/container.cid';
/** The file podman binds at the container's /etc/hostname (under its run root). */
export const containerHostnameFile = (id: string) => `/run/containers/storage/overlay-containers/${id}/userdata/hostname`;
/** The file podman binds at the container's /etc/hosts. */
export const containerHostsFile = (id: string) => `/run/containers/storage/overlay-containers/${id}/userdata/hosts`;
/** podman's name for "the host" in a container's /etc/hosts. */
export const HOST_ALIAS = 'host.containers.internal';
/** The guest's own address with --network none, as Debian names its host name. */
export const NO_NETWORK_SELF = '127.0.1.1';

/** The names the agent adds to the container's /etc/hosts. */
export interface HostEntries {
  /** The VM's gateway: the real host.containers.internal. */
  gateway?: string;
  /** The container's own host name and the guest's address, so the name resolves (as Docker's and newer podman's do). */
  self?: { name: string; address: string };
}

/**
 * The `podman run` argument vector for a plan. Pure. The container shares the VM's
 * network namespace: the VM is the isolation boundary, so a second NAT layer inside
 * it would only cost time. podman would then name the guest itself "the host"
 * (host.containers.internal); `hosts.gateway`, the VM's gateway, is the real one. With
 * the host's network podman 4.3 writes no line for the container's own host name, and
 * software that resolves it (Java's getLocalHost, RabbitMQ, sudo) fails: `hosts.self` adds it.
 */
export function podmanRunArgs(plan: ContainerRun, imageRef: string, opts: { detached?: boolean; hosts?: HostEntries } = {}): string[] {
  const args = ['run', '--name', plan.name, '--network', 'host', '--pidfile', PIDFILE, '--cidfile', CIDFILE];
  // --no-hosts: the image's /etc/hosts, with nothing of podman's or fcvm's (podman refuses --add-host beside it).
  const hosts = plan.podmanOptions?.includes('--no-hosts') ? undefined : opts.hosts;
  if (hosts?.gateway) args.push(`--add-host=${HOST_ALIAS}:${hosts.gateway}`);
  if (hosts?.self) args.push(`--add-host=${hosts.self.name}:${hosts.self.address}`);
  // Started detached, the container gets the caller's stdio itself (see container.ts).
  if (opts.detached) args.push('--detach', '--log-driver=passthrough');
  // No --cpus: a quota of all the VM's vCPUs limits nothing, and the first CPU quota in
  // a guest flips the kernel's __cfs_bandwidth_used static key, which live-patches
  // enqueue_entity while both vCPUs run it. Under TCG that patch sometimes never ends
  // (both vCPUs trapping on its INT3 for good): the container's start never came.
  args.push('--memory', `${plan.memoryMiB}m`);
  if (plan.privileged) args.push('--privileged');
  if (plan.tty) args.push('--tty');
  if (plan.stdinChannel !== undefined) args.push('--interactive');
  if (plan.init) args.push('--init');
  // Values go in the same word as their flag, so none can pass for a flag of its own.
  if (plan.workdir) args.push(`--workdir=${plan.workdir}`);
  if (plan.user) args.push(`--user=${plan.user}`);
  if (plan.entrypoint !== undefined) args.push(`--entrypoint=${plan.entrypoint}`);
  if (plan.hostname) args.push(`--hostname=${plan.hostname}`);
  for (const [k, v] of Object.entries(plan.labels ?? {})) args.push(`--label=${k}=${v}`);
  args.push(...(plan.podmanOptions ?? []));
  for (const [k, v] of Object.entries(plan.env)) args.push('--env', `${k}=${v}`);
  for (const v of plan.volumes ?? []) args.push('--volume', `${volumeMountPoint(v.index)}:${v.guest}${v.readOnly ? ':ro' : ''}`);
  args.push(imageRef);
  if (plan.command) args.push(...plan.command);
  return args;
}

/**
 * Rewrites the entries of a hosts file through `change(address, names)`, which returns
 * the entry's new address and names (or the same ones). Entries it leaves alone, comments
 * and blank lines keep their exact text. Pure.
 */
export function rewriteHosts(text: string, change: (address: string, names: string[]) => { address: string; names: string[] }): string {
  return text.split('\n').map((line) => {
    const [address, ...names] = line.trim().split(/\s+/);
    if (!address || address.startsWith('#') || names.length === 0) return line;
    const next = change(address, names);
    const same = next.address === address && next.names.length === names.length && next.names.every((n, i) => n === names[i]);
    return same ? line : `${next.address}\t${next.names.join(' ')}`;
  }).join('\n');
}
