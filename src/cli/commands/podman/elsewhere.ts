import { Command } from 'commander';
import { errors } from '../../../errors/catalogue.js';

/**
 * podman's commands that fcvm does not have, each answered in one line with why and
 * what does the job, rather than commander's "unknown command" (which offered `stop`
 * for `top`). Hidden: they are in no help and no completion.
 */
const ELSEWHERE: { names: string[]; why: string; hint: string }[] = [
  {
    names: ['pull', 'push', 'images', 'image', 'rmi', 'build', 'tag', 'untag', 'load', 'save', 'import', 'login', 'logout', 'search', 'manifest', 'history'],
    why: 'images are the host podman\'s: fcvm runs them from its storage, or pulls in the guest',
    hint: 'Use "podman CMD" on the host; "fcvm podman run" takes --pull, --creds and --authfile',
  },
  { names: ['create'], why: 'a container is created with its VM', hint: 'Use "fcvm podman run -d"' },
  {
    names: ['start', 'restart'],
    why: 'a VM that ended is not started again',
    hint: 'Run a new one with "fcvm podman run --name NAME ..." (it replaces the ended one)',
  },
  { names: ['attach'], why: 'a VM\'s container is attached only at run', hint: 'Use "fcvm podman run -i/-t", or -d and "fcvm logs -f NAME"' },
  { names: ['top'], why: 'the container\'s processes are in its VM', hint: 'Use "fcvm exec NAME ps -ef" (or "fcvm exec NAME --vm ps -ef" for the whole guest)' },
  { names: ['stats'], why: 'the VM is the container\'s resource boundary', hint: 'Use "fcvm exec NAME --vm top -bn1"; its size is --cpu and --mem ("fcvm inspect NAME")' },
  { names: ['export', 'diff', 'mount', 'unmount', 'umount'], why: 'the container\'s files are in its VM', hint: 'Use "fcvm exec NAME tar -C / -cf - PATH", or --map a host directory' },
  { names: ['pause', 'unpause'], why: 'a VM is not paused by hand', hint: 'Use "fcvm stop NAME", or "fcvm snapshot create NAME --tag T" to keep its state' },
  { names: ['checkpoint', 'restore', 'commit'], why: 'a running VM is kept as a snapshot', hint: 'Use "fcvm snapshot create NAME --tag T" and "fcvm snapshot run --snapshot T"' },
  { names: ['rename', 'update'], why: 'a VM keeps the name and size it was run with', hint: 'Run a new one with "fcvm podman run"' },
  { names: ['healthcheck'], why: 'fcvm runs the health checks itself', hint: 'See the status in "fcvm ps" or "fcvm inspect -f \'{{.State.Health.Status}}\' NAME"' },
  {
    names: ['pod', 'network', 'volume', 'kube', 'play', 'generate', 'machine', 'system', 'secret', 'events', 'auto-update', 'unshare', 'init', 'container'],
    why: 'each container is a VM of its own, with its own network and volumes',
    hint: 'See "fcvm --help" for what fcvm does; "-p", "--map" and "--network" at run',
  },
  { names: ['version', 'info'], why: 'fcvm is not podman', hint: 'Use "fcvm --version", and "podman CMD" for the host\'s podman' },
];

/** The hidden commands that answer podman's commands fcvm lacks, leaving out names `taken` by real ones. */
export function elsewhereCommands(taken: readonly string[]): Command[] {
  return ELSEWHERE.flatMap(({ names, why, hint }) => names.filter((n) => !taken.includes(n)).map((name) =>
    new Command(name)
      .helpOption(false)
      .allowUnknownOption()
      .allowExcessArguments()
      .argument('[args...]')
      .action(() => {
        throw errors.usage(`there is no "${name}" command: ${why}`, hint.replaceAll('CMD', name));
      })));
}
