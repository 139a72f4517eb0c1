import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PODMAN_RUN_UNSUPPORTED } from './podman-unsupported.js';
import { PODMAN_RUN_PASSTHROUGH } from './podman-passthrough.js';

test('the README\'s table names every podman run flag that fcvm refuses, with its status', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf('### `fcvm podman run` and `podman run`'));
  const rows = table.split('\n').filter((l) => l.startsWith('| `'));
  for (const u of PODMAN_RUN_UNSUPPORTED) {
    const long = u.spec.match(/--[a-z0-9-]+/)![0];
    const row = rows.find((r) => r.includes(`\`${long}\``));
    assert.ok(row, `${long} is not in the README's table`);
    assert.match(row, u.planned ? /\| planned: / : /\| refused: /, `${long}: planned or refused as in the code`);
  }
});

test('the README\'s table marks the flags handed to the guest\'s podman as supported', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const rows = readme.slice(readme.indexOf('### `fcvm podman run` and `podman run`')).split('\n').filter((l) => l.startsWith('| `'));
  for (const f of PODMAN_RUN_PASSTHROUGH) {
    const long = f.spec.match(/--[a-z0-9-]+/)![0];
    const row = rows.find((r) => r.includes(`\`${long}\``));
    assert.ok(row, `${long} is not in the README's table`);
    assert.match(row, /\| supported/, `${long}: supported`);
  }
});
