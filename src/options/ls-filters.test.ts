import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmListing } from '../state/list.js';
import { filtersWantEnded, matchesLsFilters, parseLsFilters } from './ls-filters.js';

const vm = (name: string, labels: Record<string, string>, status = 'healthy', image = 'localhost/bb') => ({ name, labels, status, image }) as unknown as VmListing;

test('label filters all hold; name and status filters are alternatives', () => {
  const a = vm('web-1', { team: 'a', tier: 'front' });
  const b = vm('db', { team: 'b' }, 'starting');
  const f = (...v: string[]) => parseLsFilters(v);
  assert.equal(matchesLsFilters(a, f('label=team=a')), true);
  assert.equal(matchesLsFilters(b, f('label=team=a')), false);
  assert.equal(matchesLsFilters(a, f('label=tier')), true);
  assert.equal(matchesLsFilters(b, f('label=tier')), false);
  assert.equal(matchesLsFilters(a, f('label=team=a', 'label=tier=back')), false);
  assert.equal(matchesLsFilters(a, f('name=web')), true);
  assert.equal(matchesLsFilters(b, f('name=web', 'name=db')), true);
  assert.equal(matchesLsFilters(b, f('status=healthy')), false);
  assert.equal(matchesLsFilters(a, f('label=x=1=2')), false);
  assert.deepEqual(f('label=x=1=2'), [{ key: 'label', name: 'x', value: '1=2' }]);
});

test('unknown or empty filters are refused by name', () => {
  assert.throws(() => parseLsFilters(['volume=bb']), /invalid --filter "volume=bb": unknown filter "volume"/);
  assert.throws(() => parseLsFilters(['label']), /no value/);
  assert.throws(() => parseLsFilters(['status=up']), (e: Error & { hint?: string }) =>
    /invalid --filter "status=up": unknown status "up"/.test(e.message) && /^Use one of: starting, running, healthy/.test(e.hint ?? ''));
});

test('podman\'s ancestor filter and status words', () => {
  const f = (...v: string[]) => parseLsFilters(v);
  const web = vm('web', {}, 'healthy', 'localhost/bb-web');
  assert.equal(matchesLsFilters(web, f('ancestor=localhost/bb-web')), true);
  assert.equal(matchesLsFilters(web, f('ancestor=localhost/bb-web:latest')), true);
  assert.equal(matchesLsFilters(web, f('ancestor=localhost/bb')), false);
  assert.equal(matchesLsFilters(web, f('ancestor=localhost/bb', 'ancestor=localhost/bb-web')), true);
  assert.deepEqual(f('status=created', 'status=exited'), [{ key: 'status', value: 'starting' }, { key: 'status', value: 'stopped' }]);
  assert.equal(matchesLsFilters(vm('s', {}, 'starting'), f('status=created')), true);
});

test('podman\'s name regex, id prefix and exited code; which filters ask for ended VMs', () => {
  const f = (...v: string[]) => parseLsFilters(v);
  const web = vm('web-1', {});
  assert.equal(matchesLsFilters(web, f('name=^web-1$')), true);
  assert.equal(matchesLsFilters(vm('pweb-1', {}), f('name=^web-1$')), false, 'anchored, as podman\'s');
  assert.equal(matchesLsFilters(web, f('name=web-[0-9]')), true);
  assert.equal(matchesLsFilters(web, f('name=web[')), false, 'a pattern that does not compile is plain text');
  assert.equal(matchesLsFilters(vm('web[', {}), f('name=web[')), true);
  assert.equal(matchesLsFilters(web, f('id=web')), true);
  assert.equal(matchesLsFilters(web, f('id=eb')), false);
  const ended = { ...vm('job', {}, 'stopped'), exitCode: 137 } as VmListing;
  assert.equal(matchesLsFilters(ended, f('exited=137')), true);
  assert.equal(matchesLsFilters(ended, f('exited=0')), false);
  assert.equal(matchesLsFilters(web, f('exited=0')), false, 'a running VM has not exited');
  assert.throws(() => f('exited=x'), /invalid --filter "exited=x": not an exit code/);
  assert.equal(filtersWantEnded(f('status=exited')), true);
  assert.equal(filtersWantEnded(f('exited=1')), true);
  assert.equal(filtersWantEnded(f('status=running', 'name=x')), false);
});
