import { errors } from '../errors/catalogue.js';
import type { VmListing } from '../state/list.js';
import { VmStatusSchema } from '../state/vm-state.js';

/** One --filter of `fcvm ls`, as podman ps spells them. */
export type LsFilter = { key: 'label'; name: string; value: string | undefined } | { key: 'name' | 'status' | 'ancestor' | 'id'; value: string } | { key: 'exited'; value: number };

const HINT = 'Use --filter label=KEY[=VALUE], name=REGEX, id=NAME, status=STATUS, exited=CODE or ancestor=IMAGE (repeatable)';

/** podman's status words that fcvm's statuses have no word for: created is starting, exited is stopped. */
const PODMAN_STATUS: Record<string, string> = { created: 'starting', exited: 'stopped' };

/** Parses --filter values. Pure. */
export function parseLsFilters(values: readonly string[]): LsFilter[] {
  return values.map((v) => {
    const eq = v.indexOf('=');
    const key = eq < 0 ? v : v.slice(0, eq);
    const rest = eq < 0 ? '' : v.slice(eq + 1);
    if (!rest) throw errors.invalidOption('--filter', v, 'no value', HINT);
    if (key === 'label') {
      const eq2 = rest.indexOf('=');
      return { key, name: eq2 < 0 ? rest : rest.slice(0, eq2), value: eq2 < 0 ? undefined : rest.slice(eq2 + 1) };
    }
    if (key === 'status') {
      const status = PODMAN_STATUS[rest] ?? rest;
      if (!VmStatusSchema.options.includes(status as never)) {
        throw errors.invalidOption('--filter', v, `unknown status "${rest}"`, `Use one of: ${VmStatusSchema.options.join(', ')} (or podman's created, exited)`);
      }
      return { key, value: status };
    }
    if (key === 'exited') {
      if (!/^\d{1,3}$/.test(rest) || Number(rest) > 255) throw errors.invalidOption('--filter', v, 'not an exit code', 'Give a code from 0 to 255, for example exited=137');
      return { key, value: Number(rest) };
    }
    if (key === 'name' || key === 'ancestor' || key === 'id') return { key, value: rest };
    throw errors.invalidOption('--filter', v, `unknown filter "${key}"`, HINT);
  });
}

/**
 * Whether a VM passes the filters, as podman ps combines them: every label filter must
 * hold; of the name and of the status filters, any one (a name filter matches a part of the name). Pure.
 */
export function matchesLsFilters(vm: VmListing, filters: readonly LsFilter[]): boolean {
  for (const f of filters) {
    if (f.key === 'label' && !(f.name in vm.labels && (f.value === undefined || vm.labels[f.name] === f.value))) return false;
  }
  // As podman: a name filter is a regular expression (a plain part of the name matches too), an id one a prefix of the Id, which is the name.
  const names = filters.flatMap((f) => (f.key === 'name' ? [f.value] : []));
  if (names.length > 0 && !names.some((n) => nameMatches(vm.name, n))) return false;
  const ids = filters.flatMap((f) => (f.key === 'id' ? [f.value] : []));
  if (ids.length > 0 && !ids.some((id) => vm.name.startsWith(id))) return false;
  const exited = filters.flatMap((f) => (f.key === 'exited' ? [f.value] : []));
  if (exited.length > 0 && !(vm.status === 'stopped' && exited.includes(vm.exitCode ?? -1))) return false;
  const statuses = filters.flatMap((f) => (f.key === 'status' ? [f.value] : []));
  if (statuses.length > 0 && !statuses.includes(vm.status)) return false;
  // The image as it was given, or with podman's :latest made plain or added.
  const ancestors = filters.flatMap((f) => (f.key === 'ancestor' ? [f.value] : []));
  const plain = (ref: string) => ref.replace(/:latest$/, '');
  if (ancestors.length > 0 && !ancestors.some((a) => plain(a) === plain(vm.image))) return false;
  return true;
}

/** podman's name filter: a regular expression; one that does not compile matches as plain text. Pure. */
function nameMatches(name: string, pattern: string): boolean {
  try {
    return new RegExp(pattern).test(name);
  } catch {
    return name.includes(pattern);
  }
}

/** Whether the filters ask about ended VMs (status, exited), which podman ps then lists without -a. Pure. */
export function filtersWantEnded(filters: readonly LsFilter[]): boolean {
  return filters.some((f) => f.key === 'exited' || (f.key === 'status' && f.value === 'stopped'));
}
